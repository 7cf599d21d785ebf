export { type MailConfig, MailConfigError, type MailTransportMode, mailConfigFromEnv, redactSmtpUrl } from "./config";
export { formatDuration, formatUtc } from "./format";
export {
  createMailer,
  type Mailer,
  type MailerOptions,
  type MailLog,
  type MailMessage,
  MailSendError,
  type SendResult,
} from "./mailer";
export {
  type AccountEmailModel,
  type AccountPageModel,
  type DecisionPageModel,
  type GateEmailModel,
  type RefusedCode,
  type RenderedEmail,
  renderAccountEmail,
  renderAccountPage,
  renderDecisionPage,
  renderGateEmail,
} from "./render";
