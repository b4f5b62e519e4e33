"""One generator of a stim job, with what every generator type needs to know."""

from __future__ import annotations

from dataclasses import dataclass

from bakehouse_engine.errors import JobFailure


@dataclass(frozen=True)
class GeneratorRequest:
    index: int
    config: dict  # the Generator object from the target (bread-api.md §5.5)
    numq: int
    prompt_u: str  # the teacher prompt's text, for question-writing templates
    templates_uri: str | None  # where template_path names resolve
    datasets: dict[str, str]  # from_dataset names the API resolved → the URI to read (job-spec.ts)

    @property
    def label(self) -> str:
        return f"Generator {self.index} ({self.config['type']})"

    @property
    def seed(self) -> int:
        # An unset seed still samples reproducibly, so a retried job writes the same stimuli.
        seed = self.config.get("seed")
        return 0 if seed is None else int(seed)


def resolve_numq(config: dict, index: int) -> int:
    """`numq`, or for `hardcoded` the number of questions when unset (bread-api.md §5.5)."""
    numq = config.get("numq")
    if config["type"] == "hardcoded":
        questions = config.get("questions") or []
        if not questions:
            raise JobFailure(f"Generator {index} (hardcoded) has no questions; give it a non-empty questions list.")
        if numq is None:
            return len(questions)
        if numq > len(questions):
            raise JobFailure(
                f"Generator {index} (hardcoded) asks for {numq} questions but lists only {len(questions)}; "
                "lower numq or add questions."
            )
    if numq is None:
        raise JobFailure(f"Generator {index} ({config['type']}) needs numq, the number of questions to produce.")
    return int(numq)
