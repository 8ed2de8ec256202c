package dev.graft.rewrite.method;

import com.google.common.collect.ImmutableMap;

/**
 * How a method's parameters are named and shaped in Hugging Face PEFT's adapter files
 * ({@code adapter_model.safetensors}, {@code adapter_config.json}), so an adapter trained with
 * Graft loads in PEFT and the reverse.
 *
 * <p>PEFT stores {@code base_model.model.<module path>.<suffix>} for each trainable tensor, in
 * PyTorch's {@code nn.Linear} layout: {@code weight} is {@code [out, in]}, LoRA's {@code lora_A}
 * is {@code [r, in]} and {@code lora_B} is {@code [out, r]}. Graft's MatMul layout is the
 * transpose ({@code A [in, r]}, {@code B [r, out]}).
 *
 * @param peftType PEFT's {@code peft_type} ({@code LORA})
 * @param suffixes Graft role (as recorded in {@code graft.trainable}) to PEFT key suffix, e.g.
 *     {@code A -> lora_A.weight}
 * @param transposed the roles whose 2-D tensors PEFT stores transposed
 */
public record PeftLayout(String peftType, ImmutableMap<String, String> suffixes, com.google.common.collect.ImmutableSet<String> transposed) {}
