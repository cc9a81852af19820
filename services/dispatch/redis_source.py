"""The Redis broker's fast path for leasing: a whole batch in one round trip.

kombu's Redis transport keeps a queue as lists (one per priority step) and an unacknowledged
message in two keys: a hash ``unacked`` (delivery tag -> ``[message, exchange, routing
key]``) and a sorted set ``unacked_index`` (tag -> when taken). Its ``basic_get`` moves one
message at a time, with a round trip for each list it looks at and one more to record the
message as unacked; each ack is another. Here one script takes a batch across every queue of
a poll and records it in kombu's own format, and one pipeline acks the batch: the same state
kombu would leave, so kombu's visibility-timeout restore (the maintenance job) brings back
what a crashed API process took, and Celery workers consume these queues as before.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import RedisError

from services.dispatch.lease_loop import TakenMessage, ledger_id

# KEYS: unacked hash, unacked index, then each queue's lists (``steps`` per queue), queues
# in take order. ARGV: wanted, now, steps, level count, then each level's queue count.
# Returns [list key number, message, ...]: where each message came from, to put it back.
_TAKE = """
local wanted, now, steps = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local taken, next_key = {}, 3
for level = 1, tonumber(ARGV[4]) do
  local live = {}
  for q = 1, tonumber(ARGV[4 + level]) do
    live[q] = next_key
    next_key = next_key + steps
  end
  while #taken < 2 * wanted and #live > 0 do
    local still = {}
    for _, first in ipairs(live) do
      if #taken >= 2 * wanted then
        still[#still + 1] = first
      else
        for s = 0, steps - 1 do
          local item = redis.call('RPOP', KEYS[first + s])
          if item then
            local properties = cjson.decode(item)['properties']
            local info = properties['delivery_info']
            local tag = properties['delivery_tag']
            redis.call('HSET', KEYS[1], tag, '[' .. item .. ',' .. cjson.encode(info['exchange'])
              .. ',' .. cjson.encode(info['routing_key']) .. ']')
            redis.call('ZADD', KEYS[2], now, tag)
            taken[#taken + 1] = first + s
            taken[#taken + 1] = item
            still[#still + 1] = first
            break
          end
        end
      end
    end
    live = still
  end
end
return taken
"""

# KEYS: unacked hash, unacked index, then the list each message goes back to. ARGV: the
# messages' delivery tags, then the messages, in the order they were taken.
_PUT_BACK = """
local count = #KEYS - 2
for i = count, 1, -1 do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[i + 2], ARGV[count + i])
  end
  redis.call('ZREM', KEYS[2], ARGV[i])
end
return count
"""


@dataclass(frozen=True)
class RedisQueueLayout:
    """Where kombu's Redis transport keeps queues and unacked messages (from a channel)."""

    key_prefix: str
    separator: str
    priority_steps: tuple[int, ...]
    unacked_key: str
    unacked_index_key: str

    @classmethod
    def of_channel(cls, channel: Any) -> RedisQueueLayout:
        return cls(
            key_prefix=channel.global_keyprefix or "",
            separator=channel.sep,
            priority_steps=tuple(channel.priority_steps),
            unacked_key=channel.unacked_key,
            unacked_index_key=channel.unacked_index_key,
        )

    def list_keys(self, queue: str) -> list[str]:
        """The queue's lists in the order kombu's ``basic_get`` reads them."""
        return [
            f"{self.key_prefix}{queue}{self.separator}{step}"
            if step
            else f"{self.key_prefix}{queue}"
            for step in self.priority_steps
        ]

    @property
    def unacked_keys(self) -> list[str]:
        return [self.key_prefix + self.unacked_key, self.key_prefix + self.unacked_index_key]


@dataclass(frozen=True)
class RedisDelivery:
    list_key: str
    delivery_tag: str
    raw: bytes


class RedisSource:
    """Batch take and ack on kombu's Redis layout; ``client`` must not prefix keys itself."""

    errors: tuple[type[BaseException], ...] = (RedisError, OSError)

    def __init__(self, client: redis.Redis, layout: RedisQueueLayout) -> None:
        self._client = client
        self._layout = layout
        self._take = client.register_script(_TAKE)
        self._put_back = client.register_script(_PUT_BACK)
        self._unacked: dict[str, TakenMessage] = {}

    def take(self, levels: Sequence[Sequence[str]], wanted: int) -> list[TakenMessage]:
        keys = [key for names in levels for name in names for key in self._layout.list_keys(name)]
        args = [wanted, time.time(), len(self._layout.priority_steps), len(levels)]
        flat = self._take(
            keys=[*self._layout.unacked_keys, *keys],
            args=[*args, *(len(names) for names in levels)],
        )
        taken: list[TakenMessage] = []
        for key_number, raw in zip(flat[::2], flat[1::2], strict=True):
            message = json.loads(raw)
            tag = str(message["properties"]["delivery_tag"])
            delivery = RedisDelivery(keys[int(key_number) - 3], tag, raw)
            taken.append(TakenMessage(ledger_id(message["headers"].get("id")), delivery, self))
            self._unacked[tag] = taken[-1]
        return taken

    def ack(self, messages: Sequence[TakenMessage]) -> None:
        tags = [_delivery(m).delivery_tag for m in messages]
        unacked_key, index_key = self._layout.unacked_keys
        pipeline = self._client.pipeline(transaction=True)
        pipeline.zrem(index_key, *tags)
        pipeline.hdel(unacked_key, *tags)
        pipeline.execute()
        for tag in tags:
            self._unacked.pop(tag, None)

    def close(self) -> None:
        if not self._unacked:
            return
        deliveries = [_delivery(m) for m in self._unacked.values()]
        self._put_back(
            keys=[*self._layout.unacked_keys, *(d.list_key for d in deliveries)],
            args=[*(d.delivery_tag for d in deliveries), *(d.raw for d in deliveries)],
        )
        self._unacked.clear()


def _delivery(message: TakenMessage) -> RedisDelivery:
    assert isinstance(message.handle, RedisDelivery)
    return message.handle
