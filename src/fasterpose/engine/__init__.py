"""Training and evaluation engine: typed configs, the training loop, LR schedule, torchrun/DDP helpers, demo."""

from .config import Config, find_config, list_configs, load_config, save_config
from .schedule import lr_factor

__all__ = ["Config", "find_config", "list_configs", "load_config", "lr_factor", "save_config"]
