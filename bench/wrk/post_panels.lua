-- wrk script: POST the panel in a JSON file, each request with an accession of its own.
--   wrk ... -s post_panels.lua -- BODY_FILE TOKEN PREFIX [DELAY_MS]
-- BODY_FILE holds the panel with @ACCESSION@ where the accession goes. With DELAY_MS each
-- connection waits that long between requests (a steady load instead of a saturating one).

local counter = 0
local thread_number = 0
local threads = {}

function setup(thread)
   thread_number = thread_number + 1
   thread:set("tid", thread_number)
   table.insert(threads, thread)
end

function init(args)
   local file = assert(io.open(args[1], "r"))
   template = file:read("*a")
   file:close()
   prefix = args[3] or "WRK"
   pause = tonumber(args[4] or "0")
   wrk.method = "POST"
   wrk.path = "/api/v1/panels"
   wrk.headers["Content-Type"] = "application/json"
   if args[2] and args[2] ~= "" then
      wrk.headers["Authorization"] = "Bearer " .. args[2]
   end
end

function request()
   counter = counter + 1
   local body = template:gsub("@ACCESSION@", prefix .. "-" .. tid .. "-" .. counter)
   return wrk.format(nil, nil, nil, body)
end

function delay()
   return pause
end
