# Shared by every rule file: helpers from the jtm package, never defined here.
from jtm.choices import INITS
from jtm.config import subset, validate_params
from jtm.stages import STAGES
from jtm.workflow import (
    cell_pattern,
    cells,
    ingest_files,
    input_pattern,
    outputs_of,
    params_source,
    rule_resources,
)

# Fail at load time on a params typo or a bad value, naming the file, not when the stage that
# reads it finally runs.
validate_params(config, params_source(workflow))
for name in STAGES:
    rule_resources(config, name)
# Only the demo source renders the parsed scores: for musicnet/local, demo_scores never runs.
needs_scores = STAGES["acquire"].needs("scores", config)


# A job's folder is run<run>/probes (probe: a cell per task), fixed/probes (probe_fixed) or
# run<run>/<init>/<task> (end_to_end); a pretraining run's model and embeddings are run<run>.
wildcard_constraints:
    task="[A-Za-z0-9_]+",
    init="|".join(INITS),
    run="[0-9]+",
