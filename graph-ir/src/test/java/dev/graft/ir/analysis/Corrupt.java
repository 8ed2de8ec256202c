package dev.graft.ir.analysis;

import dev.graft.ir.Graph;
import dev.graft.ir.Node;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import java.lang.reflect.Field;
import java.util.List;
import java.util.Map;

/**
 * Breaks IR invariants that the public API protects, so that tests can check the verifier sees
 * them. Reflection on purpose: no supported method can produce these states, which is exactly
 * why only a bug inside the IR (or a careless pass using package internals) could.
 */
final class Corrupt {
  private Corrupt() {}

  @SuppressWarnings("unchecked")
  static List<Use> usesOf(Value v) {
    return (List<Use>) get(v, Value.class, "uses");
  }

  static void setProducerIndex(Value v, int index) {
    set(v, Value.class, "producerIndex", index);
  }

  static void setName(Value v, String name) {
    set(v, Value.class, "name", name);
  }

  static void setGraph(Node n, Graph g) {
    set(n, Node.class, "graph", g);
  }

  @SuppressWarnings("unchecked")
  static Map<String, Value> nameIndex(Graph g) {
    return (Map<String, Value>) get(g, Graph.class, "byName");
  }

  /** Links {@code n} in a second time at the end of {@code g}'s node list. */
  static void listTwice(Graph g, Node n) {
    Node last = (Node) get(g, Graph.class, "last");
    set(last, Node.class, "next", n);
    set(g, Graph.class, "last", n);
    set(g, Graph.class, "nodeCount", (int) get(g, Graph.class, "nodeCount") + 1);
  }

  private static Object get(Object target, Class<?> type, String field) {
    try {
      Field f = type.getDeclaredField(field);
      f.setAccessible(true);
      return f.get(target);
    } catch (ReflectiveOperationException e) {
      throw new AssertionError("IR field " + type.getSimpleName() + "." + field + " is gone", e);
    }
  }

  private static void set(Object target, Class<?> type, String field, Object value) {
    try {
      Field f = type.getDeclaredField(field);
      f.setAccessible(true);
      f.set(target, value);
    } catch (ReflectiveOperationException e) {
      throw new AssertionError("IR field " + type.getSimpleName() + "." + field + " is gone", e);
    }
  }
}
