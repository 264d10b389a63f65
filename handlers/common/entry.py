"""The skeleton the queue-fed handlers (analysis, scorer, remediator) share, so each
handler module holds only its own work.

- `Handler.fail`: a message that was not processed, as the error matrix says (logged at
  ERROR, the handler's error metric +1, a `triggers.Failed`);
- `Handler.each_message`: the per-message loop (correlation id on the log lines and the
  trace, the time budget, the handler's exceptions mapped to a status and DLQ-or-retry);
- `Handler.entry`: the Lambda entry point (powertools metrics, logger and tracer
  decorators, the per-invocation metric dimensions, settings, trigger -> batch ->
  `process` -> `triggers.settle`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from aws_lambda_powertools import Logger, Metrics, Tracer

from handlers.common import settings, triggers
from handlers.common.observability import (
    MetricUnit,
    logger_for,
    metrics_for,
    refresh_namespace,
    tracer_for,
)

Result = dict[str, Any] | triggers.Failed
Results = dict[str, Result]
#: a handler's batch step: (batch, settings, time budget, Lambda context) -> result per message id
Process = Callable[[triggers.Batch, settings.Settings, triggers.Budget, Any], Results]
#: (exception types, status, poison): a raised exception -> how the message failed
ErrorMap = Sequence[tuple[type[BaseException] | tuple[type[BaseException], ...], int, bool]]


@dataclass(frozen=True)
class Handler:
    """One handler's name, observability and failure vocabulary."""

    name: str
    logger: Logger
    metrics: Metrics
    tracer: Tracer
    error_metric: str  # counted per failed message, e.g. "ScoringErrors"
    failure_log: str  # the ERROR log message of a failed message
    log_item_id: bool = False  # the failure log carries the item's own id (`id`)

    @classmethod
    def create(
        cls, name: str, *, error_metric: str, failure_log: str, log_item_id: bool = False
    ) -> Handler:
        return cls(
            name,
            logger_for(name),
            metrics_for(name),
            tracer_for(name),
            error_metric,
            failure_log,
            log_item_id,
        )

    def fail(
        self,
        status: int,
        message: str,
        *,
        poison: bool,
        item_id: str | None = None,
        count: bool = True,
    ) -> triggers.Failed:
        """A failed message: logged at ERROR and (unless `count` is False) counted."""
        if count:
            self.metrics.add_metric(name=self.error_metric, unit=MetricUnit.Count, value=1)
        extra: dict[str, Any] = {"status": status, "error": message}
        if self.log_item_id:
            extra["id"] = item_id
        extra["to_dlq"] = poison
        self.logger.error(self.failure_log, extra=extra)
        return triggers.Failed(status, message, poison=poison, item_id=item_id)

    def each_message(
        self,
        batch: triggers.Batch,
        budget: triggers.Budget,
        run: Callable[[triggers.Message], dict[str, Any]],
        errors: ErrorMap,
        *,
        unexpected: str | None = None,
    ) -> Results:
        """`run` on every message in order. An exception in `errors` fails its message with
        that status (poison: to the DLQ, else retried); with `unexpected` (the log message),
        any other Exception is logged with its traceback and retried (500), never lost;
        without it, it propagates. A message met with too little time left is 503."""
        results: Results = {}
        for m in batch.messages:
            with triggers.correlated(self.logger, m, self.tracer):
                if budget.short():
                    results[m.id] = self.fail(503, str(triggers.out_of_time(budget)), poison=False)
                    continue
                try:
                    results[m.id] = run(m)
                except Exception as exc:
                    results[m.id] = self._failed(exc, errors, unexpected)
        return results

    def _failed(self, exc: Exception, errors: ErrorMap, unexpected: str | None) -> triggers.Failed:
        for types, status, poison in errors:
            if isinstance(exc, types):
                return self.fail(status, str(exc), poison=poison)
        if unexpected is None:
            raise exc
        self.logger.exception(unexpected)
        return self.fail(500, f"{type(exc).__name__}: {exc}", poison=False)

    def entry(self, process: Process) -> Callable[[Any, Any], Any]:
        """The Lambda entry point around `process`."""

        @self.metrics.log_metrics(capture_cold_start_metric=True)
        @self.logger.inject_lambda_context(clear_state=True)
        @self.tracer.capture_lambda_handler(capture_response=False)
        def lambda_handler(event: Any, context: Any) -> Any:
            refresh_namespace(self.metrics, context)
            cfg = settings.load()
            batch = triggers.batch_of(event, context, cfg)
            results = process(batch, cfg, triggers.Budget(context, cfg.time_reserve_ms), context)
            return triggers.settle(batch, results, cfg, source=self.name, logger=self.logger)

        return cast("Callable[[Any, Any], Any]", lambda_handler)
