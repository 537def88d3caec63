/**
 * The first call into compromise, retext and VADER pays for lazy initialisation and JIT
 * (~150 ms). Built-in agents call this once at start so the first real task does not.
 */
import { detectBias } from './bias-detection.ts';
import { analyzeConversationEmotions } from './emotion-analysis.ts';
import { scoreEmpathy } from './empathy-scoring.ts';
import { detectPii } from './pii-redaction.ts';
import { analyzeConversationSentiment } from './sentiment-analysis.ts';

export function warmUpLocalAnalysers(): void {
  const turns = [
    { speaker: 'therapist', text: 'It sounds like Sam had a hard week. What happened on Monday?' },
    { speaker: 'client', text: 'I felt anxious and my boss, Ann Lee, called me crazy. Email sam@example.org.' },
  ];
  detectPii(turns);
  detectBias(turns);
  analyzeConversationSentiment(turns);
  analyzeConversationEmotions(turns);
  scoreEmpathy(turns);
}
