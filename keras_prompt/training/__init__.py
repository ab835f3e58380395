"""Training and evaluation: strategies, callbacks, `train`, `evaluate`,
`ensemble`."""

from keras_prompt.training.ensemble import ensemble
from keras_prompt.training.evaluate import evaluate
from keras_prompt.training.evaluate import load_model_with_prompt
from keras_prompt.training.model_builder import build_prompted_model
from keras_prompt.training.prompt_backup_and_restore import (
    PromptBackupAndRestore,
)
from keras_prompt.training.prompt_checkpoint import PromptCheckpoint
from keras_prompt.training.seeding import seed_random_layers
from keras_prompt.training.strategy import resolve_strategy
from keras_prompt.training.task_evaluator import TaskEvaluator
from keras_prompt.training.token_crossentropy import TokenCrossentropy
from keras_prompt.training.train import train
from keras_prompt.training.train_config import TrainConfig
from keras_prompt.training.training_error import TrainingError
from keras_prompt.training.validation_callback import ValidationCallback
from keras_prompt.training.xla_replica_step import (
    install_xla_replica_train_step,
)
