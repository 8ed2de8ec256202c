package dev.graft.trainer.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession.SessionOptions;
import dev.graft.ir.DataType;
import dev.graft.ir.Graph;
import dev.graft.ir.Value;
import dev.graft.ir.tensor.DenseTensor;
import dev.graft.ir.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * One copy of the frozen weights for all the sessions a {@link Trainer} opens (train step, eval,
 * accumulate), handed to ORT with {@code SessionOptions.addInitializer}, which uses a tensor given
 * that way in place of the model's initializer of the same name, without copying it:
 *
 * <pre>
 *   before:  train session: W1..Wn (its copy)    eval session: W1..Wn (its copy)
 *   after:   SharedWeights: W1..Wn  ◄── train session, eval session, accumulate session
 * </pre>
 *
 * Only with pre-packing off ({@link TrainSessionOptions}): a session that packs a weight keeps its
 * own packed copy beside the shared one. Shared are the frozen float32 initializers of at least
 * {@link #MIN_BYTES} that the model holds in memory; weights in a model's external data file stay
 * there (sharing them would first copy them out of the file, which the large-model path avoids).
 * {@link TrainStepGraph} has moved the model's frozen weights into direct buffers, which ORT
 * reads in place: the IR and the sessions share one copy (bge-small: 130 MB of heap less than a
 * heap copy beside ORT's). Close it after the sessions that read it.
 */
final class SharedWeights implements AutoCloseable {
  /** Smaller initializers (shapes, scalars, biases of tiny layers) stay in the model file. */
  static final long MIN_BYTES = 4096;

  private final List<String> names;
  private final List<OnnxTensor> tensors;

  private SharedWeights(List<String> names, List<OnnxTensor> tensors) {
    this.names = names;
    this.tensors = tensors;
  }

  /** Adds the same tensors to {@code other} options as well (one more session family reads them). */
  void addTo(SessionOptions other) throws OrtException {
    for (int i = 0; i < tensors.size(); i++) other.addInitializer(names.get(i), tensors.get(i));
  }

  /** Nothing shared. */
  static SharedWeights none() {
    return new SharedWeights(List.of(), List.of());
  }

  /**
   * Adds the frozen weights of {@code forward} (its initializers but {@code trainables}) to
   * {@code options}: those the IR holds off the heap as they are, so the IR and ORT read one
   * copy; others copied into direct buffers.
   */
  static SharedWeights addTo(SessionOptions options, OrtEnvironment env, Graph forward, Set<String> trainables)
      throws OrtException {
    List<OnnxTensor> made = new ArrayList<>();
    List<String> names = new ArrayList<>();
    try {
      for (Value v : forward.initializers()) {
        if (!shares(v, trainables)) continue;
        OnnxTensor o = OrtTensors.view(env, v.initializer().orElseThrow());
        made.add(o);
        names.add(v.name());
        options.addInitializer(v.name(), o);
      }
    } catch (OrtException | RuntimeException e) {
      made.forEach(OnnxTensor::close);
      throw e;
    }
    return new SharedWeights(names, made);
  }

  /**
   * Whether the sessions share initializer {@code v}: a frozen float32 tensor in memory (not in an
   * external data file) of at least {@link #MIN_BYTES}, and no graph input (which a feed may
   * replace).
   */
  static boolean shares(Value v, Set<String> trainables) {
    Tensor t = v.initializer().orElse(null);
    if (t == null || trainables.contains(v.name()) || v.isGraphInput()) return false;
    return t instanceof DenseTensor && t.dataType() == DataType.FLOAT && t.numElements() * 4 >= MIN_BYTES;
  }

  /** How many tensors are shared. */
  int count() {
    return tensors.size();
  }

  /** Their size in bytes. */
  long bytes() throws OrtException {
    long n = 0;
    for (OnnxTensor t : tensors) n += t.getInfo().getNumElements() * 4L;
    return n;
  }

  @Override
  public void close() {
    tensors.forEach(OnnxTensor::close);
  }
}
