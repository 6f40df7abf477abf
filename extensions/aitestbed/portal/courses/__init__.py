"""Courses: a project of kind ``course`` with a term, weekly class slots, one environment,
a per-student share of its GPU-hours, and instructors, assistants and students.

``store`` keeps course rows in line with a course document (settings or API), ``roster``
checks a roster CSV (pure), ``enrolment`` enrols and removes students (join codes with an
exact maximum under concurrency), ``admission`` adds the course rules to a start, and
``api`` has the routes.
"""
