"""The labelled corpus the stages share: the raw corpus in MusicNet's layout from its source
(demo, download, local), its 16 kHz arrays, their sample formats, and the Parquet index."""
