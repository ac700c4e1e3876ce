# Shared by every rule file: helpers from the jtm package, never defined here.
from jtm.config import subset
