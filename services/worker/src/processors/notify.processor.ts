/**
 * The `notify` queue: gate emails from the outbox, the gate SLA steps
 * (reminder, escalation or expiry), the learning summaries decisions ask
 * for and the learnings' embeddings. Each job calls one use case.
 */
import {
  embedPendingLearnings,
  handleGateExpiry,
  remindGate,
  sendGateNotification,
  summarizeLearning,
} from "@outcome-runtime/runtime";
import { UnrecoverableError } from "bullmq";
import { queueGateEmails, type WorkerContext } from "../context";
import type { QueueProcessor } from "../dispatch";

/** The processor of the `notify` queue. */
export function notifyProcessor(context: WorkerContext): QueueProcessor<"notify"> {
  const { logger } = context;
  const slaStep = async (step: "reminder" | "expiry", gateId: string) => {
    const result =
      step === "reminder" ? await remindGate(context.deps, gateId) : await handleGateExpiry(context.deps, gateId);
    if (result.status === "done") {
      logger.info({ gateId, step: result.step }, "gate SLA step");
      // The reminder's or the escalation's emails go out now rather than at the next sweep.
      if (context.mail !== null) await queueGateEmails(context, result.notifications);
    }
    return result;
  };
  return {
    async sendGateEmail({ notificationId }, run) {
      if (context.mail === null) throw new UnrecoverableError("no mailer configured in this worker");
      return sendGateNotification(context.mail, notificationId, { final: run.final });
    },
    gateReminder: ({ gateId }) => slaStep("reminder", gateId),
    gateExpiry: ({ gateId }) => slaStep("expiry", gateId),
    async summarizeLearning({ learningId }, run) {
      return { status: await summarizeLearning({ ...context.deps, gateway: context.gateway }, learningId, run) };
    },
    async embedLearnings() {
      const pass = await embedPendingLearnings({ ...context.deps, gateway: context.gateway });
      if (pass.failed > 0)
        logger.warn({ ...pass }, "learning embeddings failed; full-text search serves them meanwhile");
      else if (pass.embedded > 0) logger.info({ embedded: pass.embedded }, "learnings embedded");
      return pass;
    },
  };
}
