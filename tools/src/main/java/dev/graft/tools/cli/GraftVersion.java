package dev.graft.tools.cli;

import java.io.IOException;
import java.io.InputStream;
import java.util.Properties;
import picocli.CommandLine.IVersionProvider;

/** {@code graft --version}: Graft's version and the ONNX Runtime it was built against. */
final class GraftVersion implements IVersionProvider {
  @Override
  public String[] getVersion() throws IOException {
    Properties p = new Properties();
    try (InputStream in = GraftVersion.class.getResourceAsStream("version.properties")) {
      if (in != null) p.load(in);
    }
    return new String[] {
      "graft " + p.getProperty("graft.version", "(development build)"),
      "ONNX Runtime " + p.getProperty("onnxruntime.version", "(unknown)")
          + ", Java " + System.getProperty("java.version")
    };
  }
}
