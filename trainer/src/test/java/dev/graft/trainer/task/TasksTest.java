package dev.graft.trainer.task;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The default task from the labels, and the registry's names. */
class TasksTest {
  @Test
  void categoriesAndAFewIntegersClassifyNumbersRegress() {
    assertThat(Tasks.choose(List.of("pos", "neg", "pos")).task()).isEqualTo("classify");
    Tasks.Choice binary = Tasks.choose(List.of("0", "1", "1"));
    assertThat(binary.task()).isEqualTo("classify");
    assertThat(binary.reason()).contains("a few integers").contains("[0, 1]").contains("--task regress");
    Tasks.Choice real = Tasks.choose(List.of("0.5", "3.25", "1"));
    assertThat(real.task()).isEqualTo("regress");
    assertThat(real.reason()).contains("every label is a number").contains("--task classify");
    List<String> many = new ArrayList<>();
    for (int i = 0; i <= Tasks.MAX_INTEGER_CLASSES; i++) many.add(Integer.toString(i));
    assertThat(Tasks.choose(many).task()).isEqualTo("regress");
    assertThat(Tasks.choose(many.subList(0, Tasks.MAX_INTEGER_CLASSES)).task()).isEqualTo("classify");
    assertThat(Tasks.choose(List.of("1", "NaN")).task()).isEqualTo("classify");
  }

  @Test
  void theRegistryNamesEveryTaskAndRefusesOthers() {
    assertThat(Tasks.names()).contains("classify", "embed", "regress");
    for (String name : Tasks.names()) assertThat(Tasks.create(name, TaskOptions.defaults()).name()).isEqualTo(name);
    assertThatThrownBy(() -> Tasks.create("segment", TaskOptions.defaults()))
        .hasMessageContaining("Unknown task 'segment'").hasMessageContaining(Tasks.names().toString());
  }
}
