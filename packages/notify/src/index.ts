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
  type DecisionPageModel,
  type GateEmailModel,
  type RefusedCode,
  type RenderedEmail,
  renderDecisionPage,
  renderGateEmail,
} from "./render";
