"""The demo corpus: real scores parsed into note tables, ensembles to play them, and their
rendering with a SoundFont into MusicNet's layout."""
