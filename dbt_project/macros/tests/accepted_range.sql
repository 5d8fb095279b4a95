{#-
    Generic test: every non-null value of a column lies between min_value and max_value (either bound
    optional; inclusive unless inclusive=false), as dbt_utils' test of the same name.

        data_tests:
          - accepted_range:
              arguments:
                min_value: 0
                max_value: 1
-#}

{% test accepted_range(model, column_name, min_value=none, max_value=none, inclusive=true) %}
    {%- set lower_op = '>=' if inclusive else '>' -%}
    {%- set upper_op = '<=' if inclusive else '<' -%}

select *
from {{ model }}
where {{ column_name }} is not null
  and not (
      1 = 1
      {%- if min_value is not none %} and {{ column_name }} {{ lower_op }} {{ min_value }}{% endif %}
      {%- if max_value is not none %} and {{ column_name }} {{ upper_op }} {{ max_value }}{% endif %}
  )
{% endtest %}
