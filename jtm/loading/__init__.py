"""What pretraining and the probes read: windows of the 16 kHz arrays, each epoch's sampling plan,
the weighted mixture of corpora, its split between ranks, and the prefetch pool."""
