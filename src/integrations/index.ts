/**
 * integrations: adapters for services this server calls that are not AI model APIs — today the
 * Flask emotional-analysis service (SPEC §10), which plugs into the AI hub as the `flask`
 * provider. Not here: routing and resilience (ai/), HTTP routes (http/).
 */
export { FlaskService, ServiceDownError, type AnalysisCache, type FlaskServiceOptions, type FlaskStatus, type ServiceStatus } from './flask/flask-service.ts';
