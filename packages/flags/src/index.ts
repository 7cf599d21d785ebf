export * from "./http";
export * from "./provider";
export * from "./provider-module";
export * from "./registry";
export * from "./settings";
