# Shared by every rule file: helpers from the jtm package, never defined here.
from jtm.config import subset, validate_params
from jtm.stages import STAGES
from jtm.train.end_to_end import INITS
from jtm.workflow import cell_pattern, cells, rule_resources

# Fail at load time on a params typo, not when the stage that reads it finally runs.
validate_params(config)
for name in STAGES:
    rule_resources(config, name)


# A cell's folder is <task>/probes (probe) or <task>/<init> (end_to_end).
wildcard_constraints:
    task="[A-Za-z0-9_]+",
    init="|".join(INITS),
