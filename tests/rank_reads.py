"""Run by tests/test_sharded.py under torchrun: one gloo rank loads two epochs of its sharded
batches through pretraining's own loader and writes what it read (windows, files opened) to
<out>/rank<r>.json."""

import json
import sys
from pathlib import Path

from jtm.config import PretrainConfig, load_params, section
from jtm.loading.windows import WindowDataset
from jtm.train.checkpoint import TrainState
from jtm.train.distributed import setup_distributed
from jtm.train.pretrain import epoch_batches
from jtm.train.sources import training_sources


def main(params_file: str, out: str) -> None:
    params = load_params(Path(params_file))
    cfg = section(params, "pretrain", PretrainConfig)
    paths = params["paths"]
    dist = setup_distributed("cpu")
    sources = training_sources(Path(paths["index"]), (Path(paths["ingest"]), Path(paths["leakage"])), cfg)
    epochs = []
    for epoch in range(2):
        dataset = WindowDataset(sources.windows, sources.tracks)  # fresh: the files this epoch opens
        state = TrainState(epoch=epoch)
        batches = [
            [ref.index for ref in b.refs] for b in sources.rank_batches(cfg, epoch, dist.rank, dist.world)
        ]
        length = int(sources.windows["length"].iloc[0]) // 160
        loaded = [
            (len(b.audio), b.offset, b.size, len(b.draws))
            for b in epoch_batches(dataset, sources, cfg, dist, state, length)
        ]
        files = sorted(dataset._shards) + sorted(str(dataset.paths[i]) for i in dataset._arrays if i >= 0)
        epochs.append({"batches": batches, "loaded": loaded, "files": files})
    Path(out, f"rank{dist.rank}.json").write_text(json.dumps({"epochs": epochs}))


if __name__ == "__main__":
    main(*sys.argv[1:])
