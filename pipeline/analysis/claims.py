"""Claims as configuration: which releases, which competing announcements, and how to test them.

A claim file (claims/*.yaml) is the whole specification of an analysis, so a run can be
reproduced from the file, the seed and the data snapshot stored with it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from pipeline.config import CLAIMS_DIR, ROLES
from pipeline.errors import UserError
from pipeline.timing.registry import MODELS, make_null


class ClaimError(UserError):
    pass


@dataclass(frozen=True)
class EventSelector:
    """Events by id, or by kind, a title substring (case-insensitive) and a time range (events
    whose interval [earliest, latest] meets [after_utc, before_utc))."""

    event_ids: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    title_contains: str | None = None
    after_utc: str | None = None
    before_utc: str | None = None

    @classmethod
    def parse(cls, spec, where: str) -> EventSelector:
        if not isinstance(spec, dict):
            raise ClaimError(f"{where}: expected a mapping with event_ids or kinds")
        unknown = set(spec) - {"event_ids", "kinds", "title_contains", "after_utc", "before_utc"}
        if unknown:
            raise ClaimError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        sel = cls(tuple(spec.get("event_ids") or ()), tuple(spec.get("kinds") or ()),
                  spec.get("title_contains"),
                  str(spec["after_utc"]) if spec.get("after_utc") else None,
                  str(spec["before_utc"]) if spec.get("before_utc") else None)
        if not sel.event_ids and not sel.kinds:
            raise ClaimError(f"{where}: give event_ids or kinds")
        return sel

    def sql(self) -> tuple[str, list]:
        if self.event_ids:
            marks = ", ".join("?" for _ in self.event_ids)
            return f"event_id IN ({marks})", list(self.event_ids)
        clause = f"kind IN ({', '.join('?' for _ in self.kinds)})"
        params = list(self.kinds)
        if self.title_contains:
            clause += " AND title ILIKE ?"
            params.append(f"%{self.title_contains}%")
        if self.after_utc:
            clause += " AND latest_utc >= CAST(? AS TIMESTAMPTZ)"
            params.append(self.after_utc)
        if self.before_utc:
            clause += " AND earliest_utc < CAST(? AS TIMESTAMPTZ)"
            params.append(self.before_utc)
        return clause, params


@dataclass(frozen=True)
class StreamSpec:
    """An announcement stream: the items of a source, a set of events, or (``role``) every
    source of a role, one stream each. Without a label, a source stream takes the source's."""

    label: str | None = None
    source: str | None = None
    events: EventSelector | None = None
    curated: bool = False
    caveat: str | None = None
    role: str | None = None
    # Expanded from a role: a source without usable times is skipped, not an error.
    optional: bool = False


@dataclass(frozen=True)
class Claim:
    id: str
    title: str
    statement: str
    releases: EventSelector
    streams: tuple[StreamSpec, ...]
    competitors: EventSelector | None = None
    window_minutes: float = 120.0
    null: str = "shuffle-weekday-hour"
    null_options: dict = field(default_factory=dict)
    surrogates: int = 9999
    seed: int = 0
    uncertainty_draws: int = 100
    correlogram: dict | None = None
    displacement: dict | None = None
    pressure: dict | None = None
    onsets: dict | None = None  # stories_file, stories, sources, bin_minutes (see analysis/onsets.py)
    display_tz: str | None = None
    path: str | None = None

    def fingerprint(self) -> str:
        spec = {k: v for k, v in asdict(self).items() if k != "path"}
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def parse_window(value, where: str = "") -> float:
    """A window is a positive whole number of minutes (surrogates move in whole minutes)."""
    at = f"{where}: " if where else ""
    try:
        window = float(value)
    except (TypeError, ValueError):
        raise ClaimError(f"{at}{value!r} is not a number of minutes; give a whole number such as 120") from None
    if not window > 0 or window != int(window):
        raise ClaimError(f"{at}{value!r} must be a positive whole number of minutes, such as 120")
    return window


def _require(doc: dict, key: str, where: str):
    if key not in doc:
        raise ClaimError(f"{where}: missing '{key}'")
    return doc[key]


def parse_claim(doc: dict, where: str = "claim") -> Claim:
    if not isinstance(doc, dict):
        raise ClaimError(f"{where}: a claim file is a YAML mapping")
    streams = []
    for i, s in enumerate(_require(doc, "streams", where)):
        at = f"{where}: streams[{i}]"
        if not isinstance(s, dict) or sum(k in s for k in ("source", "events", "role")) != 1:
            raise ClaimError(f"{at}: give exactly one of 'source', 'events' or 'role'")
        unknown = set(s) - {"source", "events", "role", "label", "curated", "caveat"}
        if unknown:
            raise ClaimError(f"{at}: unknown key(s) {', '.join(sorted(unknown))}")
        if "role" in s and s["role"] not in ROLES:
            raise ClaimError(f"{at}: role {s['role']!r} is not one of {', '.join(ROLES)}")
        if "role" in s and s.get("label"):
            raise ClaimError(f"{at}: a role stream takes each source's own label")
        streams.append(StreamSpec(
            label=s.get("label") or (f"events[{i}]" if "events" in s else None),
            source=s.get("source"),
            events=EventSelector.parse(s["events"], at) if "events" in s else None,
            curated=bool(s.get("curated", False)),
            caveat=s.get("caveat"),
            role=s.get("role"),
        ))
    null = doc.get("null", "shuffle-weekday-hour")
    if null not in MODELS:
        raise ClaimError(f"{where}: null {null!r} is not one of {', '.join(MODELS)}")
    null_options = dict(doc.get("null_options") or {})
    try:
        make_null(null, **null_options)
    except (TypeError, ValueError) as exc:
        raise ClaimError(f"{where}: null_options: {exc}") from None
    window = parse_window(doc.get("window_minutes", 120), f"{where}: window_minutes")
    claim = Claim(
        id=str(_require(doc, "id", where)),
        title=str(_require(doc, "title", where)),
        statement=str(doc.get("claim", "")).strip(),
        releases=EventSelector.parse(_require(doc, "releases", where), f"{where}: releases"),
        streams=tuple(streams),
        competitors=(EventSelector.parse(doc["competitors"], f"{where}: competitors")
                     if doc.get("competitors") else None),
        window_minutes=window,
        null=null,
        null_options=null_options,
        surrogates=int(doc.get("surrogates", 9999)),
        seed=int(doc.get("seed", 0)),
        uncertainty_draws=int(doc.get("uncertainty_draws", 100)),
        correlogram=doc.get("correlogram"),
        displacement=doc.get("displacement"),
        pressure=doc.get("pressure"),
        onsets=_onsets_spec(doc.get("onsets"), where),
        display_tz=doc.get("display_tz"),
    )
    if claim.surrogates < 99:
        raise ClaimError(f"{where}: surrogates must be at least 99")
    return claim


ONSET_KEYS = {"stories_file", "stories", "sources", "bin_minutes"}


def _onsets_spec(spec, where: str) -> dict | None:
    if spec is None:
        return None
    if not isinstance(spec, dict) or "stories_file" not in spec:
        raise ClaimError(f"{where}: onsets needs at least stories_file (e.g. stories/2016.yaml)")
    unknown = sorted(set(spec) - ONSET_KEYS)
    if unknown:
        raise ClaimError(f"{where}: onsets has unknown key(s) {', '.join(unknown)}; it may have "
                         f"{', '.join(sorted(ONSET_KEYS))}")
    for key in ("stories", "sources"):
        if key in spec and not (isinstance(spec[key], list) and all(isinstance(x, str) for x in spec[key])):
            raise ClaimError(f"{where}: onsets.{key} is a list of names")
    bin_minutes = spec.get("bin_minutes", 15)
    if not isinstance(bin_minutes, int | float) or not 1 <= bin_minutes <= 1440:
        raise ClaimError(f"{where}: onsets.bin_minutes is a number of minutes from 1 to 1440")
    return dict(spec)


def claim_names(claims_dir: Path = CLAIMS_DIR) -> list[str]:
    """The claims in claims/ (story rules live in claims/stories/, not here)."""
    return sorted(p.stem for p in claims_dir.glob("*.yaml"))


def load_claim(name_or_path: str, claims_dir: Path = CLAIMS_DIR) -> Claim:
    """A claim by id (claims/<id>.yaml) or by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = claims_dir / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(claim_names(claims_dir)) or "none"
        raise ClaimError(f"no claim {name_or_path!r}; the claims are: {known} "
                         f"(files in {claims_dir}, or give a path to a claim file)")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ClaimError(f"{path}: not valid YAML: {exc}") from None
    claim = parse_claim(doc, str(path))
    return Claim(**{**claim.__dict__, "path": str(path)})


def resolve_relative(claim: Claim, name: str) -> Path:
    """Files named in a claim (story rules) are looked up beside the claim file."""
    base = Path(claim.path).parent if claim.path else CLAIMS_DIR
    return base / name
