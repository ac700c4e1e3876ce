"""The leakage guard: ingested audio that is (a re-encoding of) a test or validation recording of
the evaluation is kept out of pretraining. `match` aligns Chromaprint fingerprints (computed by
jtm/ingest/fingerprint.py, at ingest for the corpora), `stage` runs the guard over an ingest and
the index."""
