-- wrk script: POST /increment (by = 1) with a unique Idempotency-Key per
-- request, so that the idempotency table fills and key expiry is exercised.
-- Script argument: a run id that makes keys unique across wrk runs.
local counter = 0
local nthreads = 0
local run = "0"

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
end

function init(args)
  run = args[1] or "0"
end

function request()
  counter = counter + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("e%s-%d-%d", run, tid or 0, counter),
  }, "")
end
