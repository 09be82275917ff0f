"""Running a ServerApp over a :class:`FileGrid`: the fedbox counterpart of a SuperLink run."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from flwr.app import Context, RecordDict, UserConfig
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.server.run_serverapp import run as run_serverapp
from flwr.supercore.run import Run

from fedbox.fl.config import AppConfig
from fedbox.fl.events import EventCallback
from fedbox.fl.grid import FileGrid, run_id_for
from fedbox.fl.record import RunRecord
from fedbox.fl.replay import RecordingGrid, load_server_app, run_seed, seed_generators
from fedbox.rpc import Box

__all__ = ["DEFAULT_JOIN_TIMEOUT", "ServerOutcome", "TooFewDatasites", "make_run", "run_server"]

logger = logging.getLogger(__name__)

DEFAULT_JOIN_TIMEOUT = 120.0
"""Seconds a run waits for its datasites to join, unless told otherwise."""


class TooFewDatasites(TimeoutError):
    """Fewer datasites than the run needs joined in time; the ServerApp never started."""


@dataclass(slots=True)
class ServerOutcome:
    """How a ServerApp run ended. ``finished`` is True only if its main returned."""

    finished: bool
    context: Context
    seconds: float
    error: BaseException | None = None
    interrupted: bool = False
    stop_acknowledged: frozenset[str] = frozenset()
    keys_missing: dict[str, str] = field(default_factory=dict)
    """Encrypted runs: datasites whose keys never appeared (they could not be invited)."""
    joined: tuple[str, ...] = ()
    never_joined: tuple[str, ...] = ()


def make_run(app_config: AppConfig, app_name: str, override_config: UserConfig) -> Run:
    """The Flower ``Run`` record for this app name (run id derived from the name)."""
    run = Run.create_empty(run_id_for(app_name))
    run.fab_id = app_config.fab_id
    run.fab_version = app_config.version
    run.override_config = dict(override_config)
    run.primary_task_id = 1
    return run


def run_server(
    box: Box,
    app_config: AppConfig,
    app_name: str,
    datasites: Iterable[str],
    run_config: UserConfig,
    *,
    timeout: float | None = None,
    callback: EventCallback | None = None,
    stop_wait: float = 10.0,
    stop_ttl: float | None = None,
    min_datasites: int | None = None,
    join_timeout: float | None = None,
    record: RunRecord | None = None,
) -> ServerOutcome:
    """Wait for ``min_datasites`` (default: all) to join, run the app's ServerApp to
    the end, then tell every datasite to stop. The ServerApp is imported while the
    invitations are out: an app importing PyTorch or scikit-learn takes a while, and
    the datasites take a while to answer (issue 20).

    The join wait lasts ``join_timeout`` at most (default :data:`DEFAULT_JOIN_TIMEOUT`);
    if too few joined by then the outcome's error is :class:`TooFewDatasites` and the
    ServerApp does not run.

    The stop goes out however the ServerApp ends, including an exception or Ctrl-C
    (KeyboardInterrupt is reported in the outcome, not re-raised), valid ``stop_ttl`` s
    (:meth:`FileGrid.stop_nodes`), so datasites never wait for a run that is over (a
    resumed run invites them again: restarted, they find it and continue with their
    saved Contexts).

    With a ``record`` (:mod:`fedbox.fl.record`) every exchange is recorded, and a
    reopened record is replayed first (:mod:`fedbox.fl.replay`); its status says how
    the run ended. Python's, NumPy's and torch's generators are seeded from the run
    (the record's seed, else the run's name), so a run replays as it ran.
    """
    run = make_run(app_config, app_name, run_config)
    app = box.app(app_name)
    grid = (
        FileGrid(app, datasites, run=run, timeout=timeout, run_config=run_config, callback=callback)
        if record is None
        else RecordingGrid(
            app,
            datasites,
            record=record,
            run=run,
            timeout=timeout,
            run_config=run_config,
            callback=callback,
        )
    )
    context = Context(
        run_id=run.run_id,
        node_id=SUPERLINK_NODE_ID,
        node_config={},
        state=RecordDict(),
        run_config=dict(run_config),
    )
    started = time.monotonic()
    outcome = ServerOutcome(finished=False, context=context, seconds=0.0)
    logger.info("run %s (id %d) starting with %d datasites", app_name, run.run_id, len(grid.nodes))
    needed = len(grid.nodes) if min_datasites is None else min_datasites
    join_wait = DEFAULT_JOIN_TIMEOUT if join_timeout is None else join_timeout
    if not 1 <= needed <= len(grid.nodes):
        raise ValueError(f"min_datasites must be 1 to {len(grid.nodes)}, not {needed}")
    try:
        grid.invite()  # the datasites answer while the ServerApp's modules load
        server_app = load_server_app(app_config)
        joined = grid.wait_for_datasites(needed, join_wait)
        if len(joined) < needed:
            missing = [e for e in grid.nodes.values() if e not in joined]
            raise TooFewDatasites(
                f"{len(joined)} of the {needed} datasites needed joined within "
                f"{join_wait:g} s; not joined: {', '.join(missing)}"
            )
        seed_generators(run_seed(app_name) if record is None else record.info.seed)
        run_serverapp(
            grid=grid,
            context=context,
            server_app_dir=str(app_config.app_dir),
            loaded_server_app=server_app,
        )
        if isinstance(grid, RecordingGrid):
            grid.check_complete()
        outcome.finished = True
    except KeyboardInterrupt as exc:
        logger.warning("run %s interrupted; stopping the datasites", app_name)
        outcome.interrupted, outcome.error = True, exc
    except TooFewDatasites as exc:
        logger.error("run %s not started: %s", app_name, exc)
        outcome.error = exc
    except Exception as exc:  # the CLI reports it; datasites must still be stopped
        logger.exception("the ServerApp of %s failed", app_name)
        outcome.error = exc
    finally:
        outcome.seconds = time.monotonic() - started
        outcome.joined = tuple(grid.joined)
        outcome.never_joined = tuple(e for e in grid.nodes.values() if e not in grid.joined)
        outcome.keys_missing = {
            e: r for e, r in grid.keys_missing.items() if e in outcome.never_joined
        }
        grid.forget()
        if isinstance(grid, RecordingGrid) and grid.replayed:
            logger.info("run %s: %d grid calls answered from its record", app_name, grid.replayed)
        if record is not None:
            _note_end(record, outcome)
        try:
            waiting = _say_waiting if outcome.interrupted else None
            outcome.stop_acknowledged = frozenset(
                grid.stop_nodes(wait=stop_wait, ttl=stop_ttl, waiting=waiting)
            )
        except KeyboardInterrupt:
            logger.warning("second interrupt: not waiting for stop acknowledgements")
            outcome.interrupted = True
    return outcome


def _say_waiting(count: int, seconds: float) -> None:
    """After a Ctrl-C, say what the run still waits for and how not to: a second Ctrl-C
    right away would otherwise meet a silent wait of up to ``--stop-wait``."""
    logger.warning(
        "waiting up to %g s for %d datasite%s to confirm the stop; Ctrl-C again not to wait",
        seconds,
        count,
        "" if count == 1 else "s",
    )


def _note_end(record: RunRecord, outcome: ServerOutcome) -> None:
    """The run's status in its record: finished, interrupted (resumable) or failed."""
    if outcome.finished:
        record.set_status("finished")
    elif outcome.interrupted:
        record.set_status("interrupted")
    else:
        error = outcome.error
        text = f"{type(error).__name__}: {error}" if error is not None else "failed"
        record.set_status("failed", text)
