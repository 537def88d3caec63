/** config: the one schema and loader; the only reader of process.env. Nothing else here. */
export { loadConfig, describeConfig, ConfigError, type Config, type LoadConfigOptions, type AiProviderName } from './load-config.ts';
export { CONFIG_FIELDS, type ConfigField } from './config-schema.ts';
