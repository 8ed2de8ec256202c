package dev.graft.tools.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.graft.fixtures.PretrainedModels;
import dev.graft.ir.io.proto.Onnx.ModelProto;
import dev.graft.ir.io.proto.Onnx.NodeProto;
import dev.graft.ir.io.proto.Onnx.TensorProto;
import dev.graft.ir.io.proto.Onnx.TensorShapeProto;
import dev.graft.ir.io.proto.Onnx.ValueInfoProto;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code graft inspect} on the real all-MiniLM-L6-v2, checked against what the protobuf itself
 * says (read with the generated classes, not through Graft's IR) and against the numbers of the
 * acceptance criterion.
 */
class InspectCommandTest {
  private static Path miniLm;
  private static ModelProto proto;
  private static Map<?, ?> json;

  @BeforeAll
  static void inspectMiniLm() throws Exception {
    miniLm = PretrainedModels.miniLm();
    proto = ModelProto.parseFrom(Files.readAllBytes(miniLm));
    CliRun run = CliRun.of("inspect", "--json");
    assertThat(run.err()).isEmpty();
    assertThat(run.exit()).isZero();
    assertThat(run.out().lines()).hasSize(1);
    json = (Map<?, ?>) MiniJson.parse(run.out());
  }

  @Test
  void opCensusOfMiniLmIsTheAcceptanceCensus() {
    Map<String, Long> expected = new LinkedHashMap<>();
    expected.put("Constant", 146L);
    expected.put("Add", 88L);
    expected.put("Gather", 52L);
    expected.put("Unsqueeze", 51L);
    expected.put("Shape", 49L);
    expected.put("MatMul", 48L);
    expected.put("Mul", 26L);
    expected.put("ReduceMean", 26L);
    expected.put("Div", 25L);
    expected.put("Concat", 24L);
    expected.put("Reshape", 24L);
    expected.put("Transpose", 24L);
    expected.put("Sub", 14L);
    expected.put("Pow", 13L);
    expected.put("Sqrt", 13L);
    expected.put("Softmax", 6L);
    expected.put("Erf", 6L);
    expected.put("Cast", 1L);
    expected.put("Slice", 1L);

    assertThat(json.get("nodeCount")).isEqualTo(637L);
    assertThat(json.get("opCensus")).isEqualTo(expected);
    assertThat(json.get("opCensus")).isEqualTo(censusFromProto());
    assertThat(json.get("nodeCount")).isEqualTo((long) proto.getGraph().getNodeCount());
  }

  @Test
  void headerOpsetsAndIoMatchTheProto() {
    assertThat(json.get("irVersion")).isEqualTo(proto.getIrVersion());
    assertThat(json.get("producer"))
        .isEqualTo(proto.getProducerName() + " " + proto.getProducerVersion());
    Map<String, Long> opsets = new LinkedHashMap<>();
    proto.getOpsetImportList().forEach(o -> opsets.put(o.getDomain(), o.getVersion()));
    assertThat(json.get("opsets")).isEqualTo(opsets).isEqualTo(Map.of("", 11L));

    Set<String> initializers =
        proto.getGraph().getInitializerList().stream()
            .map(TensorProto::getName)
            .collect(Collectors.toSet());
    List<Object> inputs = new ArrayList<>();
    for (ValueInfoProto v : proto.getGraph().getInputList()) {
      if (!initializers.contains(v.getName())) inputs.add(port(v));
    }
    List<Object> outputs = new ArrayList<>();
    for (ValueInfoProto v : proto.getGraph().getOutputList()) outputs.add(port(v));
    assertThat(json.get("inputs")).isEqualTo(inputs);
    assertThat(json.get("outputs")).isEqualTo(outputs);
    assertThat(((List<?>) json.get("inputs")).stream().map(p -> (Object) ((Map<?, ?>) p).get("name")).toList())
        .containsExactly((Object) "input_ids", "attention_mask", "token_type_ids");
    assertThat(((Map<?, ?>) ((List<?>) json.get("outputs")).get(0)).get("shape"))
        .isEqualTo(List.of("batch_size", "sequence_length", 384L));
  }

  @Test
  void parametersAreInitializerElementsAndConstantsAreCountedApart() {
    Map<String, Long> byType = new TreeMap<>();
    long total = 0;
    for (TensorProto t : proto.getGraph().getInitializerList()) {
      long n = t.getDimsList().stream().reduce(1L, Math::multiplyExact);
      total += n;
      byType.merge(
          TensorProto.DataType.forNumber(t.getDataType()).name().toLowerCase(), n, Long::sum);
    }
    assertThat(json.get("parameterCount")).isEqualTo(total);
    assertThat(json.get("parametersByType")).isEqualTo(byType);
    assertThat(json.get("initializerCount"))
        .isEqualTo((long) proto.getGraph().getInitializerCount());

    long constantNodes = 0;
    long constantElements = 0;
    for (NodeProto n : proto.getGraph().getNodeList()) {
      if (!n.getOpType().equals("Constant")) continue;
      constantNodes++;
      TensorProto t = n.getAttribute(0).getT(); // the exporter writes `value` tensors only
      constantElements += t.getDimsList().stream().reduce(1L, Math::multiplyExact);
    }
    assertThat(json.get("constantNodeCount")).isEqualTo(constantNodes).isEqualTo(146L);
    assertThat(json.get("constantCount")).isEqualTo(constantElements);
    assertThat(json.get("externalData")).isEqualTo(List.of());
  }

  @Test
  void anExplicitPathGivesTheSameSummary() {
    CliRun run = CliRun.of("inspect", miniLm.toString(), "--json");
    assertThat(run.exit()).isZero();
    Map<?, ?> byPath = (Map<?, ?>) MiniJson.parse(run.out());
    assertThat(byPath.get("model")).isEqualTo(miniLm.toString());
    Map<Object, Object> a = new LinkedHashMap<>(byPath);
    Map<Object, Object> b = new LinkedHashMap<>(json);
    a.remove("model");
    b.remove("model");
    assertThat(a).isEqualTo(b);
  }

  @Test
  void textReportShowsTheSameFacts() {
    CliRun run = CliRun.of("inspect");
    assertThat(run.exit()).isZero();
    assertThat(run.err()).isEmpty();
    assertThat(run.out())
        .contains("all-MiniLM-L6-v2")
        .containsPattern("opsets\\s+ai\\.onnx 11")
        .containsPattern("input_ids\\s+int64\\[batch_size,sequence_length\\]")
        .containsPattern("last_hidden_state\\s+float\\[batch_size,sequence_length,384\\]")
        .containsPattern("nodes\\s+637")
        .containsPattern("Constant\\s+146")
        .containsPattern("MatMul\\s+48")
        .containsPattern(
            String.format("parameters\\s+%,d in", (Long) json.get("parameterCount")));
  }

  @Test
  void externalDataFilesAreListedWithTheirSize(@TempDir Path dir) throws Exception {
    Files.write(dir.resolve("w.bin"), TinyProtoModels.weightBytes());
    Path model = TinyProtoModels.write(TinyProtoModels.external("w.bin"), dir.resolve("m.onnx"));

    CliRun run = CliRun.of("inspect", model.toString(), "--json");

    assertThat(run.err()).isEmpty();
    Map<?, ?> summary = (Map<?, ?>) MiniJson.parse(run.out());
    assertThat(summary.get("externalData"))
        .isEqualTo(List.of(Map.of("location", "w.bin", "tensors", 1L, "bytes", 48L)));
    assertThat(summary.get("parameterCount")).isEqualTo(12L);
    assertThat(summary.get("opCensus")).isEqualTo(Map.of("MatMul", 1L));
  }

  private static Map<String, Long> censusFromProto() {
    Map<String, Long> census = new TreeMap<>();
    for (NodeProto n : proto.getGraph().getNodeList()) census.merge(n.getOpType(), 1L, Long::sum);
    return census;
  }

  private static Map<String, Object> port(ValueInfoProto v) {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("name", v.getName());
    m.put(
        "type",
        TensorProto.DataType.forNumber(v.getType().getTensorType().getElemType())
            .name()
            .toLowerCase());
    List<Object> shape = new ArrayList<>();
    for (TensorShapeProto.Dimension d : v.getType().getTensorType().getShape().getDimList()) {
      shape.add(d.hasDimValue() ? (Object) d.getDimValue() : d.getDimParam());
    }
    m.put("shape", shape);
    return m;
  }
}
