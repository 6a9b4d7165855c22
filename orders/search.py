"""Finding a reward or an order by what people remember: part of a name or email, a reference (RW-7K3Q-92), an
external id, a PO number, a metadata value, or an id.

Where pg_trgm is installed (core.0001) each reward's `search_text` (a stored generated column: reference,
recipient name, email and phone, external id and metadata values, lower-cased) has a trigram GIN index on its
words after the reference (SEARCH_WORDS), so "contains" is an index scan whatever the number of rewards
(bench/search.py: 1k vs 1M). A reference is matched whole (with or without `RW-`, any case) by its unique index:
part of a random code finds nothing anyone meant, and its trigrams were the dearest part of the index to write
(orders 0026: −9 % of a bulk chunk's PostgreSQL CPU). Where it is not, the
migration built prefix indexes instead and search matches the *beginning* of a name or email, or a whole
reference or external id (docs/operations.md says so); the choice is read from the schema's indexes.

Fast paths, cheapest first: an id (primary key or order id); one word that is exactly an external id, a reference
or an email address (btree lookups); then "contains", where a word most rewards share (a company's email
domain, "person") is kept out of the trigram index and checked on the rows the rarer words find
(common_terms). Callers order by (created_at, id) descending and slice: the plan is then either a bitmap of
few rows sorted, or a walk of the created_at index that stops at the page's end; no count of all matches is
ever taken.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.db.models import Q, QuerySet, TextField, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Lower, StrIndex

from core.db import connection

from .models import Order, Reward

_WORD_RUNS = re.compile(r"[^\W_]+")
MIN_TERM_CHARS = 3  # a trigram index cannot narrow a shorter "contains": shorter queries match whole values only
MAX_QUERY_CHARS = 200
MAX_TERMS = 5
ORDERS_FROM_REWARDS = 1000  # rewards' orders an order search considers (newest first): bounded work per query
# A word in more than COMMON_SHARE of the newest SAMPLE_ROWS rewards is "common" (common_terms): 1,000 rows are
# one index range and ~1 ms to read; 5 % is where the trigram index stops paying for such a word (bench/search.py).
SAMPLE_ROWS = 1000
COMMON_SHARE = 0.05

# The text the trigram index holds (orders 0026): a reward's search text after its first word, the reference.
SEARCH_WORDS = "substr({table}.search_text, strpos({table}.search_text, ' ') + 1)"
# A whole reference as typed (lower-cased), "RW-" optional: RW-7K3Q-92, 7k3q-92 (longer past 2^30 rewards).
_REFERENCE_TERM = re.compile(r"(?:rw-)?([0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{2,12})")

_trigram_schemas: dict[str, bool] = {}


def search_has_trigram_index() -> bool:
    """Whether this schema's rewards have the trigram index (else the prefix fallback), cached per schema."""
    schema = connection.schema_name
    if schema not in _trigram_schemas:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() "
                "AND indexname = 'reward_search_trgm')"
            )
            _trigram_schemas[schema] = bool(cursor.fetchone()[0])
    return _trigram_schemas[schema]


def search_terms(q: str) -> list[str]:
    """The words of a query, lower-cased (at most MAX_TERMS)."""
    text = " ".join((q or "").split())[:MAX_QUERY_CHARS].lower()
    return [term for term in text.split(" ") if term][:MAX_TERMS]


def _too_short(terms: list[str]) -> bool:
    """No word long enough for a "contains" lookup: only whole references, external ids and emails match."""
    return all(len(term) < MIN_TERM_CHARS for term in terms)


def _as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        return None


def reference_of(term: str) -> str | None:
    """The reference `term` (a lower-cased search word) is, if it has a reference's shape."""
    found = _REFERENCE_TERM.fullmatch(term)
    return f"RW-{found.group(1).upper()}" if found else None


def _words(table: str) -> str:
    return SEARCH_WORDS.format(table=table)


def fragments(term: str) -> list[str]:
    """The runs of letters and digits in `term` long enough to have trigrams: what pg_trgm indexes ("p100.2@exam"
    is "p100" and "exam"; punctuation separates words for it)."""
    return [part for part in _WORD_RUNS.findall(term) if len(part) >= MIN_TERM_CHARS]


def common_fragments(parts: list[str]) -> set[str]:
    """The fragments found in more than COMMON_SHARE of the newest SAMPLE_ROWS rewards (one index scan of the
    newest rows, ~1 ms at any size).

    A trigram index answers "contains" by reading the posting list of each trigram; a fragment every reward
    shares ("person", "example" of an email domain, a company's name) has posting lists as long as the table,
    ~1,600 pages at 1M rewards (25-35 ms warm, 130-230 ms cold, bench/search.py). Such a fragment narrows
    nothing: it is left to a check of the rows the rare fragments found (strpos, which the index does not
    serve), and when nothing is rare the newest rewards are walked until a page is full, which dense matches
    fill at once."""
    parts = list(dict.fromkeys(parts))
    if not parts:
        return set()
    table = Reward._meta.db_table
    counts = ", ".join("count(*) FILTER (WHERE strpos(words, %s) > 0)" for _ in parts)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), {counts} FROM (SELECT {_words(table)} AS words FROM {table} "
            "ORDER BY created_at DESC LIMIT %s) AS newest",
            [*parts, SAMPLE_ROWS],
        )
        sampled, *found = cursor.fetchone()
    if sampled < SAMPLE_ROWS:
        return set()  # a small table: every plan is cheap, and the index's is exact
    return {part for part, n in zip(parts, found, strict=True) if n > sampled * COMMON_SHARE}


def reward_search_filter(q: str) -> Q:
    """The rewards matching every word of `q` (see the module docstring for what a word matches)."""
    terms = search_terms(q)
    exact = _as_uuid(" ".join(terms))
    if exact is not None:
        return Q(pk=exact) | Q(order_id=exact)
    if _too_short(terms):
        raw = " ".join((q or "").split())
        return Q(external_id=raw) | Q(reference=raw.upper()) | Q(recipient_email=raw.lower())
    if search_has_trigram_index():
        common = common_fragments([part for term in terms for part in fragments(term)])
        rare = {term: [part for part in fragments(term) if part not in common] for term in terms}
        # A word with no fragment of 3 (e.g. "ab-cd") is read from the index whole, as pg_trgm pads short words.
        narrowing = any(rare.values()) or any(not fragments(term) and len(term) >= MIN_TERM_CHARS for term in terms)
        whole = not narrowing and len(terms) > 1 and not _dense_together(terms)
        match = Q()
        for index, term in enumerate(terms):
            if whole or not fragments(term):
                # Whole: every word is everywhere but the words together are rare, so walking the newest
                # rewards could read the whole table; the index's intersection is bounded.
                word = Q(search_words__contains=term)
            else:
                word = Q()
                for part in rare[term]:
                    word &= Q(search_words__contains=part)  # read from the trigram index
                if rare[term] != [term]:
                    word &= Q(**{f"search_pos_{index}__gt": 0})  # the word itself, checked on those rows
            reference = reference_of(term)
            match &= (word | Q(reference=reference)) if reference else word
        return match
    phrase = " ".join(terms)
    return (
        Q(email_lower__startswith=phrase)
        | Q(name_lower__startswith=phrase)
        | Q(reference=phrase.upper())
        | Q(external_id=" ".join((q or "").split()))
    )


def _dense_together(terms: list[str]) -> bool:
    """Whether the words together still match more than COMMON_SHARE of the newest rewards."""
    table = Reward._meta.db_table
    together = " AND ".join("strpos(words, %s) > 0" for _ in terms)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FILTER (WHERE {together}) FROM (SELECT {_words(table)} AS words FROM {table} "
            "ORDER BY created_at DESC LIMIT %s) AS newest",
            [*terms, SAMPLE_ROWS],
        )
        (n,) = cursor.fetchone()
    return bool(n > SAMPLE_ROWS * COMMON_SHARE)


def reward_search(queryset: QuerySet[Reward], q: str) -> QuerySet[Reward]:
    """`queryset` narrowed to the rewards matching `q`. A one-word query that is exactly an external id, a
    reference or an email address gets those rewards (btree lookups, one cheap query first): at 1M rewards a
    trigram scan for "row-100000-1" intersects posting lists as long as the table (bench/search.py). Call it and
    read the result inside `core.db.custom_plans()`, as every caller does: it reads once already, and a search's
    statements prepared on a connection could get a generic plan that walks the table (docs/operations.md)."""
    terms = search_terms(q)
    if len(terms) == 1 and _as_uuid(terms[0]) is None:
        raw = " ".join((q or "").split())
        exact = queryset.filter(Q(external_id=raw) | Q(reference=raw.upper()) | Q(recipient_email=raw.lower()))
        if exact.exists():
            return exact
    # Constant SQL, the indexed expression word for word (so the index is used): the generated column is not
    # modelled (Django would try to write it).
    words = RawSQL(_words(f'"{Reward._meta.db_table}"'), [], output_field=TextField())  # noqa: S611
    positions = {f"search_pos_{index}": StrIndex(words, Value(term)) for index, term in enumerate(terms)}
    return queryset.alias(
        search_words=words,
        email_lower=Lower("recipient_email"),
        name_lower=Lower("recipient_name"),
        **positions,
    ).filter(reward_search_filter(q))


def order_search(queryset: QuerySet[Order], q: str, *, reward_orders: list[Any] | None = None) -> QuerySet[Order]:
    """`queryset` narrowed to orders matching `q`: by id, external id or PO number, by a metadata value, or
    holding a reward that matches (the newest ORDERS_FROM_REWARDS such rewards; `reward_orders` when the caller
    has just searched the rewards itself, so the index is not read twice). Read it inside `core.db.custom_plans()`:
    under a generic plan its OR of ids, external id, PO number and metadata walked every order."""
    terms = search_terms(q)
    raw = " ".join((q or "").split())
    exact = _as_uuid(raw)
    if exact is not None:
        return queryset.filter(pk=exact)
    if reward_orders is None:
        reward_orders = list(
            reward_search(Reward.objects.all(), q)
            .order_by("-created_at", "-id")
            .values_list("order_id", flat=True)[:ORDERS_FROM_REWARDS]
        )
    match = Q(pk__in=set(reward_orders)) | Q(external_id=raw) | Q(po_number=raw)
    if search_has_trigram_index() and not _too_short(terms):
        metadata = Q()
        for term in terms:
            metadata &= Q(metadata_text__contains=term)
        match |= metadata
        queryset = queryset.alias(
            # The expression the migration indexed (order_metadata_trgm), word for word, so the index is used.
            metadata_text=RawSQL(  # noqa: S611 - constant SQL
                f"""lower(jsonb_path_query_array("{Order._meta.db_table}"."metadata", '$.*')::text)""",
                [],
                output_field=TextField(),
            )
        )
    return queryset.filter(match)


def search_describe() -> dict[str, Any]:
    """What search matches in this schema, for the portal's hint and the API docs."""
    return {"contains": search_has_trigram_index(), "min_chars": MIN_TERM_CHARS}
