-- wrk script for bench/serve.sh: what CI clients do to `serve`, nine reads to one write.
-- Reads: the status poll every deploy makes (workspaceOrError). Writes: a location document
-- with a unique git.commit_hash; each acknowledged one is appended to $BENCH_ACKED.<thread>
-- so serve.sh can check that every acknowledged write is stored exactly once.
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

local token = os.getenv("BENCH_TOKEN")
local headers = {
  ["Content-Type"] = "application/json",
  ["Dagster-Cloud-Api-Token"] = token,
  ["Dagster-Cloud-Deployment"] = "prod",
}
local read_body = '{"query":"query CliLocationsQuery { workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus } } } }","variables":{}}'
local write_query = 'mutation CliAddOrUpdateLocation($d: GenericScalar!) { addOrUpdateLocationFromDocument(document: $d) { __typename ... on WorkspaceEntry { locationName document } } }'
local counter = 0
local acked

function init(args)
  acked = assert(io.open(os.getenv("BENCH_ACKED") .. "." .. id, "w"))
end

function request()
  counter = counter + 1
  if counter % 10 ~= 0 then
    return wrk.format("POST", "/graphql", headers, read_body)
  end
  local commit = string.format("t%d-%d", id, counter)
  local location = string.format("w%d-%d", id, (counter / 10) % 12)
  local body = string.format(
    '{"query":"%s","variables":{"d":{"location_name":"%s","code_source":{"module_name":"m"},"image":"r/x:1","git":{"commit_hash":"%s"}}}}',
    write_query, location, commit)
  return wrk.format("POST", "/graphql", headers, body)
end

function response(status, headers, body)
  if status == 200 then
    local commit = body:match('"commit_hash":"(t%d+%-%d+)"')
    if commit then
      acked:write(commit, "\n")
      acked:flush()
    end
  end
end
