"""Training: typed configs (`config`), Hydra composition (`compose`), construction (`build`), the
loop (`trainer`), and its parts: loss, schedule, EMA, freezing, validation, checkpoints, loggers,
signals, and the parallelism engines (`engines/`).

    from foundation.train.compose import load_run_config
    from foundation.train.trainer import Trainer
    result = Trainer(load_run_config(["data.path=mine.xyz", "trainer.max_steps=100"])).train()
"""
