package dev.graft.trainer.task;

import ai.onnxruntime.OrtException;
import dev.graft.ir.Model;
import dev.graft.trainer.train.Trainer;
import java.util.List;
import java.util.Optional;

/**
 * What is trained, as opposed to how (the training loop) and on which backbone changes (the
 * recipe): in PyTorch Lightning's terms the LightningModule, in Hugging Face's the
 * {@code ...ForSequenceClassification} head chosen by the task. A task owns
 *
 * <ul>
 *   <li>its data: it reads the files ({@link #load}) and cuts them into batches ({@link
 *       #trainBatches}), text today, images or token blocks in other tasks;
 *   <li>the head it adds when the model, after the recipe, lacks the output it needs ({@link
 *       #head});
 *   <li>its objective: the graph the train step differentiates, which may carry extra outputs
 *       (a pooled embedding) and extra inputs (a loss mask) the loop never names ({@link
 *       #objective}), and the loss, attached in that one place;
 *   <li>its evaluation and metrics ({@link #evaluate});
 *   <li>what the saved model keeps ({@link #finish}): training-only outputs removed, the task
 *       and its labels recorded in the metadata for {@code graft eval}.
 * </ul>
 *
 * The loop ({@code dev.graft.trainer.run.TrainingLoop}) only moves {@link TaskBatch}es from the
 * task to the {@link Trainer} and metrics from the task to the log, so a new task is one new
 * class plus its data reader, registered in {@link Tasks}. A task object is used for one run:
 * {@link #load} is called once, before anything else.
 */
public interface Task {
  /** Model metadata key holding the task's name ({@link #name()}), read by {@code graft eval}. */
  String METADATA_KEY = "graft.task";

  /** The name {@code graft train --task} takes and tuned models record: "classify". */
  String name();

  /**
   * Reads the training and held-out data (splitting the held-out part off when {@code data}
   * names none); returns a line saying what it read. Bad data is a {@code DataFileException}.
   */
  String load(DataConfig data);

  /**
   * The head to add to {@code model} (the recipe already applied) when it lacks the output this
   * task reads; empty when it has it. A model with no suitable output and a task told to add no
   * head ({@code --head none}) is an {@code IllegalArgumentException} that says what to do.
   */
  Optional<TaskHead> head(Model model);

  /** The graph the train step differentiates, built on a copy of {@code model}; see {@link Objective}. */
  Objective objective(Model model);

  /**
   * The training batches of one epoch, in an order that depends only on {@code seed}, so that a
   * resumed run sees the batches an uninterrupted one would. Each feeds exactly the objective's
   * batch inputs and its labels.
   */
  List<TaskBatch> trainBatches(long seed);

  /** How many training examples an epoch visits. */
  int trainSize();

  /** How many held-out examples {@link #evaluate} scores. */
  int testSize();

  /** Scores the held-out data with {@code trainer}'s current parameters (its eval graph). */
  Evaluation evaluate(Trainer trainer) throws OrtException;

  /**
   * The model to save after training: {@code trained} (the objective's model with the trained
   * values) without what only training needed, with {@link #METADATA_KEY} and the task's own
   * metadata (label names) set.
   */
  Model finish(Model trained);

  /**
   * Records the task in {@code model}'s metadata before training, so that a model saved by an
   * earlier stage or a checkpointed run already says what it is. The default writes the name.
   */
  default void describe(Model model) {
    model.putMetadata(METADATA_KEY, name());
  }
}
