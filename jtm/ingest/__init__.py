"""Stage `ingest`: folders of unlabeled audio in any format libsndfile reads -> 16 kHz shards.

`discover` lists a corpus's files; `decode` turns one file into mono 16 kHz samples (streamed,
bounded memory) and their Chromaprint fingerprint (`fingerprint`), or a reason it cannot;
`shards` packs decoded files into fixed-size shards that a killed run keeps; `stage` runs the
three over every corpus of the params.
"""
