package dev.graft.ir;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A model-local function (FunctionProto): a named body graph whose inputs and outputs are the
 * function's formal parameters, with attribute parameters that body nodes reference through
 * {@link Attr#refAttrName()}.
 */
public final class Function {
  private String name;
  private String domain;
  private String overload;
  private String docString;
  private final Graph body;
  private final List<String> attributeNames = new ArrayList<>();
  private final List<Attr> attributeDefaults = new ArrayList<>();
  private final LinkedHashMap<String, Long> opsets = new LinkedHashMap<>();
  private byte[] extras = new byte[0];

  public Function(String domain, String name, Graph body) {
    this.domain = domain;
    this.name = name;
    this.body = body;
  }

  public String name() {
    return name;
  }

  public String domain() {
    return domain;
  }

  public String overload() {
    return overload;
  }

  public void setOverload(String o) {
    this.overload = o;
  }

  public String docString() {
    return docString;
  }

  public void setDocString(String s) {
    this.docString = s;
  }

  /** The body: its inputs and outputs are the function's formal inputs and outputs. */
  public Graph body() {
    return body;
  }

  /** Attribute parameters without defaults (FunctionProto.attribute). Mutable. */
  public List<String> attributeNames() {
    return attributeNames;
  }

  /** Attribute parameters with defaults (FunctionProto.attribute_proto). Mutable. */
  public List<Attr> attributeDefaults() {
    return attributeDefaults;
  }

  public Map<String, Long> opsets() {
    return opsets;
  }

  public byte[] extras() {
    return extras.clone();
  }

  public void setExtras(byte[] extras) {
    this.extras = extras == null ? new byte[0] : extras.clone();
  }

  /** The key under which nodes call this function. */
  public String id() {
    return domain + "::" + name + (overload == null || overload.isEmpty() ? "" : ":" + overload);
  }
}
