export { checkHostAndOrigin, handleMcpPost, jsonRpcError, type OriginPolicy } from "./http";
export { createMcpServer, type McpServerContext } from "./server";
export { ERROR_META_KEY } from "./tool-errors";
