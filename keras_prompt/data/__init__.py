"""Text-to-text tasks and `tf.data` pipelines."""

from keras_prompt.data.causal_text_to_text_pipeline import (
    CausalTextToTextPipeline,
)
from keras_prompt.data.data_error import DataError
from keras_prompt.data.file_source import FileSource
from keras_prompt.data.file_source import infer_file_format
from keras_prompt.data.file_source import read_rows
from keras_prompt.data.file_task import file_task
from keras_prompt.data.glue_formatter import GlueFormatter
from keras_prompt.data.glue_tasks import GLUE_TASKS
from keras_prompt.data.glue_tasks import make_glue_task
from keras_prompt.data.metrics import accuracy
from keras_prompt.data.metrics import compute_metrics
from keras_prompt.data.metrics import exact_match
from keras_prompt.data.metrics import f1
from keras_prompt.data.metrics import f1a
from keras_prompt.data.metrics import macro_f1
from keras_prompt.data.metrics import normalize_squad
from keras_prompt.data.metrics import squad_exact_match
from keras_prompt.data.metrics import squad_f1
from keras_prompt.data.record_formatter import RecordFormatter
from keras_prompt.data.record_targets import RecordTargets
from keras_prompt.data.task import Task
from keras_prompt.data.task_registry import get_task
from keras_prompt.data.task_registry import list_tasks
from keras_prompt.data.task_registry import register_task
from keras_prompt.data.task_registry import resolve_task
from keras_prompt.data.taskless_formatter import TasklessFormatter
from keras_prompt.data.template_formatter import TemplateFormatter
from keras_prompt.data.text_to_text_pipeline import TextToTextPipeline
from keras_prompt.data.tfds_source import TFDSSource
from keras_prompt.data.wsc_formatter import WscFormatter
from keras_prompt.data.wsc_targets import WscTargets
from keras_prompt.data.wsc_targets import wsc_referent_match
