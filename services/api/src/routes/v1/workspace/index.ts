/**
 * Workspace settings: read by anyone in the workspace, changed by an admin.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { ALL_GATE_DECISIONS, getWorkspaceSettings, updateWorkspaceSettings } from "@outcome-runtime/runtime";
import { Type } from "typebox";
import { PROBLEM_RESPONSES } from "../../../dto";
import type { RouteOptions } from "../../route-options";

const SettingsDto = Type.Object({
  sessionRequiredDecisions: Type.Array(Type.Enum([...ALL_GATE_DECISIONS]), {
    description:
      "gate decisions an email link may not make: the link's page asks for a signed-in dashboard session " +
      "instead (default [resume]: sending traffic to a paused experiment again)",
  }),
  separationOfDuties: Type.Boolean({
    description:
      "separation of duties at launches (default true): whoever revised an outcome may not alone approve the " +
      "launch of one of its experiments within the launch gate's SLA (at least 48 h) of the revision (403 separation_of_duties); " +
      "another assignee or an admin approves. Set false for a one-person team",
  }),
});

const workspaceRoutes: FastifyPluginAsyncTypebox<RouteOptions> = async (app, { deps }) => {
  app.get(
    "/v1/workspace/settings",
    {
      config: { operations: ["settings.read"] },
      schema: {
        tags: ["workspace"],
        summary: "Get the workspace settings",
        response: { 200: SettingsDto, ...PROBLEM_RESPONSES },
      },
    },
    async (request) => ({ ...(await getWorkspaceSettings(deps, request.caller)) }),
  );

  app.patch(
    "/v1/workspace/settings",
    {
      config: { operations: ["settings.update"] },
      schema: {
        tags: ["workspace"],
        summary: "Change the workspace settings (admin)",
        body: Type.Partial(SettingsDto, { additionalProperties: false }),
        response: { 200: SettingsDto, ...PROBLEM_RESPONSES },
      },
    },
    async (request) => ({ ...(await updateWorkspaceSettings(deps, request.caller, request.body)) }),
  );
};

export default workspaceRoutes;
