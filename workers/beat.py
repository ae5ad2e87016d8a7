"""Beat's scheduler: celery-redbeat, with a Redis outage or failover survived instead of ending beat.

redbeat's ``tick`` lets a Redis error out of beat's loop, which ends the process (a Sentinel
failover, a restart, a demoted primary answering READONLY). Here such a tick is skipped and tried
again a few seconds later; a lock that was lost meanwhile (expired during the outage, or not yet
replicated to the promoted primary) is taken again if it is free, the schedule written again from
the config (a Redis that lost the lock may have lost the entries too), and while another beat
holds it this one schedules nothing, as a standby does.
"""
from __future__ import annotations

import logging
from typing import Any

import redis
from redbeat import RedBeatScheduler
from redbeat.schedulers import LUA_EXTEND_TO_SCRIPT, get_redis
from redis.exceptions import LockError

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0
# What a Redis away, failing over, loading or demoted answers.
REDIS_OUTAGE = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError, redis.BusyLoadingError)


class Scheduler(RedBeatScheduler):
    lock: Any  # redis-py's Lock once taken (RedBeatScheduler leaves it unannotated)

    def _take_lock(self) -> bool:
        """Take the beat lock if it is free (never waits: the loop comes back)."""
        if self.lock is None:
            client = get_redis(self.app)
            lock = client.lock(self.lock_key, timeout=self.lock_timeout, sleep=self.max_interval)
            lock.lua_extend = client.register_script(LUA_EXTEND_TO_SCRIPT)
            self.lock = lock
        return bool(self.lock.acquire(blocking=False))

    def tick(self, *args, **kwargs):
        try:
            if self.lock_key and self.lock is None and not self._take_lock():
                return self.max_interval  # started during an outage, or a standby: not ours yet
            return super().tick(*args, **kwargs)
        except LockError:
            if self._lock_again():
                # A Redis that lost the lock may have lost the schedule too (a restart without
                # persistence, a replica promoted before it had them): the entries are written
                # again from the config, keeping the last run times that are still there.
                self.setup_schedule()
                log.warning("beat: the schedule lock was lost (Redis failed over or restarted); "
                            "taken again and the schedule re-synced")
                return 0
            log.info("beat: another beat holds the schedule lock; standing by")
            return self.max_interval
        except REDIS_OUTAGE as exc:
            log.warning("beat: Redis unavailable (%s: %s); next try in %.0f s", type(exc).__name__, exc,
                        RETRY_SECONDS)
            return RETRY_SECONDS
        except redis.ResponseError as exc:
            if str(exc).split(" ", 1)[0] not in ("READONLY", "LOADING", "MASTERDOWN", "UNBLOCKED", "TRYAGAIN"):
                raise
            log.warning("beat: Redis is failing over (%s); next try in %.0f s", exc, RETRY_SECONDS)
            return RETRY_SECONDS

    def _lock_again(self) -> bool:
        try:
            return self._take_lock()
        except REDIS_OUTAGE:
            return False
