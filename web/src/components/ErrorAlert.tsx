/** The page's one alert: every error the server answered, as it said it. */
export function ErrorAlert({ errors }: { errors: (string | null | undefined)[] }) {
  const shown = [...new Set(errors.filter((e): e is string => !!e))];
  if (!shown.length) return null;
  return (
    <div class="alert" role="alert" data-testid="error">
      {shown.map((e) => (
        <p key={e}>{e}</p>
      ))}
    </div>
  );
}
