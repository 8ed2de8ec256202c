package dev.graft.tools.cli;

/**
 * A problem with what the user gave the CLI (a path, a combination of options) found by the CLI
 * itself. Its message is printed as it is, on one line, and the command exits with status 1.
 */
final class UserError extends RuntimeException {
  UserError(String message) {
    super(message);
  }
}
