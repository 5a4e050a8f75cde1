"""Names shared across stages: aliases, tags, metric keys, queues and file names.

Keeping them in one module means the DAG, the registry adapter, the evaluator
and the tests can never disagree on a spelling.
"""

# MLflow registry aliases (never the deprecated stages).
CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"
PREVIOUS_CHAMPION_ALIAS = "previous_champion"

# Registered-model tag through which the canary controller sets the gateway's traffic split.
TAG_CANARY_PERCENT = "bertloop.canary_percent"
TAG_CANARY_REASONS = "bertloop.canary_reasons"
TAG_CANARY_OUTCOME = "bertloop.canary_outcome"
# A version's infra validation in the gateway: "passed: ..." or "failed: ..." (the canary fails closed
# on "failed"), and the ledger action a gateway's refusal is recorded under.
TAG_INFRA_VALIDATION = "bertloop.infra_validation"
INFRA_PASSED = "passed"
INFRA_FAILED = "failed"
LEDGER_INFRA_FAILED = "infra_validation_failed"
# The golden sample a version is proved on before it serves: written by evaluation, under the
# training run's evaluation/ artifacts.
INFRA_SAMPLE_FILE = "infra-sample.json"

# Roles of a model in the gateway, as recorded in the prediction log.
ROLE_CHAMPION = "champion"
ROLE_CANARY = "canary"
ROLE_SHADOW = "shadow"
# Who a request came from while the gateway takes no API keys: feedback given_by names no key.
ANONYMOUS_CALLER = "anonymous"

# Lineage tags written on MLflow runs and model versions.
TAG_PREFIX = "bertloop."
TAG_RUN_KEY = "bertloop.run_key"
TAG_AIRFLOW_RUN_ID = "bertloop.airflow_run_id"
TAG_DATA_HASH = "bertloop.data_hash"
TAG_DATA_PATH = "bertloop.data_path"
TAG_GOLDEN_HASH = "bertloop.golden_set_hash"
TAG_BASE_CHECKPOINT = "bertloop.base_checkpoint"
TAG_CODE_VERSION = "bertloop.code_version"
TAG_CONFIG_HASH = "bertloop.config_hash"
TAG_DECISION = "bertloop.decision"
TAG_TRAINING_STOP = "bertloop.training_stop"  # why training ended and which step was kept
TAG_TRAINING_RECIPE = "bertloop.training_recipe"  # why the validation split and the recipe are as they are
PARAM_UNVALIDATED_CLASSES = "validation.unvalidated_classes"  # trained on whole, not in the validation scores
TAG_DECISION_REASONS = "bertloop.decision_reasons"
TAG_CHAMPION_VERSION = "bertloop.compared_with_champion_version"
# "bertloop.golden.accuracy" = "0.925 (0.890–0.960, n=200)": each golden metric with its interval.
TAG_GOLDEN_PREFIX = "bertloop.golden."

DECISION_BLESSED = "blessed"
DECISION_NOT_BLESSED = "not_blessed"

# Metric keys logged by the evaluator; the gate refers to them by these names.
METRIC_ACCURACY = "accuracy"
METRIC_MACRO_F1 = "macro_f1"
GOLDEN_PREFIX = "golden_"
CHAMPION_PREFIX = "champion_golden_"

# Airflow wiring.
DAG_RETRAIN = "retrain"
DAG_CANARY = "canary"
DAG_ROLLBACK = "rollback"
DAG_READMIT = "readmit_batch"
CHALLENGER_ASSET_NAME = "bertloop_challenger_registered"
CHALLENGER_ASSET_URI = "bertloop://registry/challenger"
DRIFT_ASSET_NAME = "bertloop_drift_confirmed"
DRIFT_ASSET_URI = "bertloop://drift/confirmed"
DAG_DRIFT = "monitor_drift"
DEFAULT_TRAIN_QUEUE = "gpu"
TRAIN_ON_CONFIGURED = "configured"  # the retrain form's choice for "use training.train_on"
DEFAULT_TRAIN_POOL = "gpu_training"

# Files in a run directory (one JSON manifest per step) and in a quarantine folder.
STEP_INGEST = "ingest"
STEP_VALIDATE = "validate"
STEP_VERSION = "version"
STEP_TRAIN = "train"
STEP_EVALUATE = "evaluate"
STEP_REGISTER = "register"
QUARANTINE_REPORT_MD = "report.md"
QUARANTINE_REPORT_JSON = "report.json"
QUARANTINE_ROWS_CSV = "rows.csv"  # rows split off an accepted batch, a reason each
QUARANTINE_ROWS_MD = "rows.md"
# Feedback exported by a drift check: the champion is wrong on it by construction, so it is
# not judged for label noise against the champion.
DRIFT_BATCH_PREFIX = "drift-feedback-"
QUARANTINE_REPORT_HTML = "report.html"
QUARANTINE_GX_RESULT = "gx_validation_result.json"
QUARANTINE_DATA_DOCS = "data_docs"

# The model artifact name inside an MLflow run.
MODEL_ARTIFACT = "model"
