-- Argo CD health check for Labrador resources (Taxonomy, SyntheticDataJob, FineTuneJob).
-- Install it under resource.customizations.health.labrador.dev_<Kind> (see docs/argocd.md).
-- Argo CD runs Lua 5.1 (gopher-lua); this script uses nothing newer.
local hs = {}
local function condition(status, ctype)
  if status.conditions == nil then return nil end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then return c end
  end
  return nil
end
local function explain(status, fallback)
  local failed = condition(status, "Failed")
  if failed ~= nil and failed.status == "True" and failed.message ~= nil and failed.message ~= "" then
    return failed.reason .. ": " .. failed.message
  end
  local ready = condition(status, "Ready")
  if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
    return ready.reason .. ": " .. ready.message
  end
  return fallback
end

if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Labrador operator"
  return hs
end
local status = obj.status
if status.observedGeneration ~= nil and obj.metadata.generation ~= nil
    and status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. obj.metadata.generation
  return hs
end
local phase = status.phase
-- a succeeded FineTuneJob with spec.serve: healthy once its server answers (Serving True)
local serving = condition(status, "Serving")
if phase == "Succeeded" and serving ~= nil and serving.status ~= "True" then
  if serving.reason == "ServerStarting" or serving.reason == "Unschedulable" then
    hs.status = "Progressing"
  elseif serving.reason == "ServerStopped" then
    hs.status = "Suspended"
  else
    hs.status = "Degraded"  -- NotPromoted, ServerFailed, OOMKilled, CrashLoopBackOff, ImagePullBackOff, ...
  end
  hs.message = serving.reason .. ": " .. (serving.message or "")
elseif phase == "Succeeded" or phase == "Ready" then
  hs.status = "Healthy"
  hs.message = explain(status, phase)
elseif phase == "Failed" or phase == "Invalid" then
  hs.status = "Degraded"
  hs.message = explain(status, phase)
elseif phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = "runPolicy.suspend is true"
else
  hs.status = "Progressing"
  local msg = phase
  if status.progress ~= nil and status.progress.percent ~= nil then
    msg = msg .. " (" .. status.progress.percent .. "%)"
  end
  hs.message = explain(status, msg)
  if phase == "Running" or phase == "Mixing" or phase == "Evaluating" or phase == "Exporting" or phase == "Syncing" then
    hs.message = msg
  end
end
return hs
