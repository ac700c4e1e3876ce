"""MusicNet itself: its on-disk layout and checks (the data contract every stage reads), and the
resumable, verified download and extraction of the archive."""
