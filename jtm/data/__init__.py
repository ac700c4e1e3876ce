"""Data: the demo corpus, MusicNet acquisition and checks, the 16 kHz arrays and their index, and
the windows pretraining and the probes read."""
