export * from "./provider";
export * from "./provider-module";
