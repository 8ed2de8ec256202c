package dev.graft.trainer.train;

import static com.google.common.base.Preconditions.checkArgument;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtProvider;
import java.util.Locale;

/** Where the train-step graph runs: {@code cpu}, {@code cuda} (device 0) or {@code cuda:N}. */
public record Device(Kind kind, int index) {
  public enum Kind {
    CPU,
    CUDA
  }

  public Device {
    checkArgument(kind != null, "a device needs a kind");
    checkArgument(index >= 0, "device index must not be negative, got %s", index);
    checkArgument(kind == Kind.CUDA || index == 0, "the CPU has no device index, got %s", index);
  }

  public static Device cpu() {
    return new Device(Kind.CPU, 0);
  }

  public static Device cuda(int index) {
    return new Device(Kind.CUDA, index);
  }

  /** Parses {@code cpu}, {@code cuda} or {@code cuda:N} (case-insensitive). */
  public static Device parse(String s) {
    checkArgument(s != null, "no device given; use cpu, cuda or cuda:N");
    String t = s.trim().toLowerCase(Locale.ROOT);
    if (t.equals("cpu")) return cpu();
    if (t.equals("cuda")) return cuda(0);
    if (t.startsWith("cuda:")) {
      String n = t.substring(5);
      checkArgument(
          !n.isEmpty() && n.chars().allMatch(Character::isDigit),
          "Unknown device '%s': after 'cuda:' comes a device number, e.g. cuda:0",
          s);
      return cuda(Integer.parseInt(n));
    }
    throw new IllegalArgumentException(
        "Unknown device '" + s + "'; use cpu, cuda or cuda:N (N the CUDA device number).");
  }

  /**
   * This device, refused at once when the ONNX Runtime on the class path has no provider for it
   * (the CPU build and {@code cuda}), so that a run stops before it reads its data rather than
   * when its first session opens. A provider that is there but cannot start (missing CUDA
   * libraries) is still found when the session opens.
   */
  public Device requireProvider() {
    if (kind == Kind.CUDA && !OrtEnvironment.getAvailableProviders().contains(OrtProvider.CUDA)) {
      throw new IllegalStateException("Cannot use device " + this + ": " + Trainer.CUDA_HELP
          + ". This ONNX Runtime build has the providers " + OrtEnvironment.getAvailableProviders() + ".");
    }
    return this;
  }

  @Override
  public String toString() {
    return kind == Kind.CPU ? "cpu" : "cuda:" + index;
  }
}
