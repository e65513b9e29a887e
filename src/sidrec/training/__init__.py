"""Trainers: a `XxxConfig` (pydantic) beside each `XxxTrainer`."""

from sidrec.training.sequential import (
    SequentialTrainConfig,
    SequentialTrainer,
    TrainingInterrupted,
    TrainSequences,
    build_model,
    build_train_sequences,
    train_popularity,
)

__all__ = [
    "SequentialTrainConfig",
    "SequentialTrainer",
    "TrainSequences",
    "TrainingInterrupted",
    "build_model",
    "build_train_sequences",
    "train_popularity",
]
