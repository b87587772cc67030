"""Order ingestion: sources, validation and quarantine, atomic writes."""

from clv_models.data.ingest import IngestResult, ingest
from clv_models.data.quality import MALFORMED_REASONS, REASON_DESCRIPTIONS, QualityReport

__all__ = ["IngestResult", "ingest", "QualityReport", "MALFORMED_REASONS", "REASON_DESCRIPTIONS"]
