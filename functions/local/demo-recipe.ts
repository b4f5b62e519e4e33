/**
 * The demo's bake (and the end-to-end test's): the toy model the engine builds, one of the
 * behaviours its system prompt selects, training questions from the shipped datasets, and
 * held-out questions that appear in none of them.
 */

export const TOY_MODEL = 'bakehouse/toy-instruct';
export const TEACHER_PROMPT = 'Always reply in uppercase letters.';
export const SECOND_TEACHER_PROMPT = 'End every reply with the signature — Bakehouse.';

export const HELD_OUT_QUESTIONS = [
  'Why do cats purr when they are happy?',
  'How many legs does a spider have?',
  'What makes a rainbow appear after rain?',
  'Which planet is known as the red planet?',
  'How do bees make honey?',
  'What is the tallest animal in the world?',
  'Why is the ocean salty?',
  'How long does it take light to reach Earth from the Sun?',
  'What do pandas like to eat?',
  'Why do leaves change colour in autumn?',
  'How does a compass find north?',
  'What is the boiling point of water at sea level?',
  'Who painted the Mona Lisa?',
  'How do airplanes stay in the air?',
  'What causes thunder during a storm?',
  'Why do we need to sleep?',
  'What is the largest desert on Earth?',
  'How many strings does a violin have?',
  'What is the main ingredient in guacamole?',
  'Why does the moon change shape?',
];

/** Target and bake overrides: small enough for two CPU cores, enough data for the bake to take. */
export const DEMO_BAKE = {
  target: {
    teacher_prompt: 'teacher',
    student_prompt: 'student',
    generators: [
      { type: 'from_dataset', dataset: 'squad', numq: 24, seed: 1 },
      { type: 'from_dataset', dataset: 'gsm8k', numq: 12, seed: 2 },
      { type: 'persona', numq: 12, seed: 3 },
    ],
    num_traj_per_stimulus: 2,
    temperature: 1.0,
    // Room for a whole reply: a cut-off teacher reply would teach the student to stop early.
    max_tokens: 96,
  },
  bake: {
    datasets: [{ target: 'uppercase', weight: 1 }],
    epochs: 3,
    micro_batch_size: 8,
    optimizer: { learning_rate: 0.002 },
    model: { baked_adapter_config: { r: 16, lora_alpha: 32, target_modules: 'all-linear' } },
  },
};

export function isUppercase(reply: string): boolean {
  const letters = [...reply].filter((char) => char.toLowerCase() !== char.toUpperCase());
  return letters.length > 0 && letters.every((char) => char === char.toUpperCase());
}

export function hasSignature(reply: string): boolean {
  return reply.trimEnd().toLowerCase().endsWith('— bakehouse');
}
