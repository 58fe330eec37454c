"""Pipeline stages, in order. Each is idempotent: it reads the ledger, does only what is missing, and records."""

STAGE_ORDER = ("teachers", "generate", "filter", "finetune", "evaluate", "report")
