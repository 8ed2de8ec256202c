package dev.graft.ir.io;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.UnknownFieldSet;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Value;
import dev.graft.ir.io.proto.Onnx;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The few wire details that the IR's plain fields cannot carry, kept so that load then save gives
 * back an equal proto: an opset_import list with absent domains or repeated entries, and IR
 * version 1 attributes that have no {@code type} field. They ride in the objects' opaque extras;
 * only io reads them.
 */
final class ProtoFidelity {
  /** A field number no ONNX message uses, marking an attribute whose proto had no type. */
  static final int TYPE_ABSENT_FIELD = 536_870_000;

  private ProtoFidelity() {}

  /**
   * Keeps the opset_import list in the model's extras when the domain-to-version map cannot
   * reproduce it exactly. The writer uses it only while the map still says the same.
   */
  static void recordOpsets(Model m, Onnx.ModelProto p) {
    boolean plain = p.getOpsetImportList().stream().allMatch(o -> o.hasDomain() && o.hasVersion());
    boolean unique = p.getOpsetImportCount() == m.opsets().size();
    if (plain && unique) return;
    try {
      Onnx.ModelProto extras =
          Onnx.ModelProto.parseFrom(m.extras()).toBuilder()
              .addAllOpsetImport(p.getOpsetImportList())
              .build();
      m.setExtras(extras.toByteArray());
    } catch (InvalidProtocolBufferException e) {
      throw new AssertionError(e);
    }
  }

  /** Writes the opsets: the recorded list if it still matches the model's map, else the map. */
  static void writeOpsets(Model m, Onnx.ModelProto.Builder b) {
    if (b.getOpsetImportCount() > 0) {
      Map<String, Long> recorded = new LinkedHashMap<>();
      for (Onnx.OperatorSetIdProto o : b.getOpsetImportList()) {
        recorded.put(o.getDomain(), o.getVersion());
      }
      if (recorded.equals(m.opsets())) return;
      b.clearOpsetImport();
    }
    for (Map.Entry<String, Long> e : m.opsets().entrySet()) {
      b.addOpsetImport(
          Onnx.OperatorSetIdProto.newBuilder().setDomain(e.getKey()).setVersion(e.getValue()));
    }
  }

  static byte[] markTypeAbsent(byte[] extras) {
    try {
      Onnx.AttributeProto.Builder b = Onnx.AttributeProto.parseFrom(extras).toBuilder();
      UnknownFieldSet marked =
          UnknownFieldSet.newBuilder(b.getUnknownFields())
              .addField(
                  TYPE_ABSENT_FIELD, UnknownFieldSet.Field.newBuilder().addVarint(1).build())
              .build();
      return b.setUnknownFields(marked).build().toByteArray();
    } catch (InvalidProtocolBufferException e) {
      throw new AssertionError(e);
    }
  }

  /** Strips the marker; returns whether the attribute's type should stay unwritten. */
  static boolean takeTypeAbsent(Onnx.AttributeProto.Builder b) {
    UnknownFieldSet u = b.getUnknownFields();
    if (!u.hasField(TYPE_ABSENT_FIELD)) return false;
    UnknownFieldSet.Builder ub = UnknownFieldSet.newBuilder();
    for (Map.Entry<Integer, UnknownFieldSet.Field> e : u.asMap().entrySet()) {
      if (e.getKey() != TYPE_ABSENT_FIELD) ub.addField(e.getKey(), e.getValue());
    }
    b.setUnknownFields(ub.build());
    return true;
  }

}
