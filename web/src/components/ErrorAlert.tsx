/** The page's one alert (or a section's, with a testid of its own): every error the server
 * answered, as it said it. */
export function ErrorAlert({ errors, testid = "error" }: { errors: (string | null | undefined)[]; testid?: string }) {
  const shown = [...new Set(errors.filter((e): e is string => !!e))];
  if (!shown.length) return null;
  return (
    <div class="alert" role="alert" data-testid={testid}>
      {shown.map((e) => (
        <p key={e}>{e}</p>
      ))}
    </div>
  );
}
