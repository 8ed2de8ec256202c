package dev.graft.ir;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;

/**
 * A model: the main graph, the opset imported per domain, model-local functions, metadata and
 * producer information.
 *
 * <p>Scalars that ONNX can leave absent (ir_version, producer, model_version, doc string) are
 * null when absent, so that a load and save writes back exactly what was read. {@code extras}
 * holds the proto fields the IR does not model (training info, device configurations, unknown
 * fields), opaque to everything but io.
 */
public final class Model {
  private Long irVersion;
  private final LinkedHashMap<String, Long> opsets = new LinkedHashMap<>();
  private String producerName;
  private String producerVersion;
  private String domain;
  private Long modelVersion;
  private String docString;
  private Graph graph;
  private final LinkedHashMap<String, String> metadata = new LinkedHashMap<>();
  private final List<Function> functions = new ArrayList<>();
  private byte[] extras = new byte[0];

  public Model(Graph graph) {
    this.graph = graph;
  }

  /**
   * A deep copy: new graphs, nodes and values, sharing the immutable tensors. External tensors
   * stay lazy (a copy of a model with 5 GiB of external data maps nothing and reads nothing), and
   * nothing is serialised, so there is no 2 GiB limit. Edits of the copy never show in this
   * model, and the copy saves to the same bytes as this model.
   */
  public Model copy() {
    return ModelCopier.copy(this);
  }

  public Graph graph() {
    return graph;
  }

  public void setGraph(Graph graph) {
    this.graph = graph;
  }

  /** The IR version, or 0 when absent. */
  public long irVersion() {
    return irVersion == null ? 0 : irVersion;
  }

  public Long rawIrVersion() {
    return irVersion;
  }

  public void setIrVersion(Long v) {
    this.irVersion = v;
  }

  /** Opset version per domain ("" is the default ONNX domain), in stored order. */
  public Map<String, Long> opsets() {
    return java.util.Collections.unmodifiableMap(opsets);
  }

  public void setOpset(String domain, long version) {
    opsets.put(domain, version);
  }

  public void removeOpset(String domain) {
    opsets.remove(domain);
  }

  /** The default-domain opset ("" or "ai.onnx"). */
  public OptionalLong defaultOpset() {
    Long v = opsets.get("");
    if (v == null) v = opsets.get("ai.onnx");
    return v == null ? OptionalLong.empty() : OptionalLong.of(v);
  }

  public String producerName() {
    return producerName;
  }

  public void setProducerName(String s) {
    this.producerName = s;
  }

  public String producerVersion() {
    return producerVersion;
  }

  public void setProducerVersion(String s) {
    this.producerVersion = s;
  }

  public String domain() {
    return domain;
  }

  public void setDomain(String s) {
    this.domain = s;
  }

  public Long modelVersion() {
    return modelVersion;
  }

  public void setModelVersion(Long v) {
    this.modelVersion = v;
  }

  public String docString() {
    return docString;
  }

  public void setDocString(String s) {
    this.docString = s;
  }

  /** Model metadata (metadata_props), in stored order; Graft records trainables here. */
  public Map<String, String> metadata() {
    return java.util.Collections.unmodifiableMap(metadata);
  }

  public void putMetadata(String key, String value) {
    metadata.put(key, value);
  }

  public void removeMetadata(String key) {
    metadata.remove(key);
  }

  /** Model-local functions, in stored order. Mutable. */
  public List<Function> functions() {
    return functions;
  }

  public byte[] extras() {
    return extras.clone();
  }

  public void setExtras(byte[] extras) {
    this.extras = extras == null ? new byte[0] : extras.clone();
  }
}
